// libFuzzer harness: one input is the output of `runsc symbolize` (PC lines and location lines).
// A thrown GVisorSymbolizeError is the right answer to bad input; a trap, a hang or running out of
// memory is a finding. Every PC the table lists must resolve to its own source range.
import CoverageAPI
import GVisorBackend

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGVisorSymbolize(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let table: GVisorSymbolTable
    do {
        table = try GVisorSymbolTable(parsing: text)
    } catch {
        precondition(!error.description.isEmpty, "an empty error message")
        return 0
    }
    for entry in table.coverable {
        precondition(table.sourceRange(of: entry.pc) == entry.source, "a listed PC does not resolve to its own range")
    }
    let pcs = table.coverable.map(\.pc) + [0, 1, UInt64.max]
    let result = table.symbolize(pcs)
    precondition(result.found.count + result.unknown.count == pcs.count, "symbolize lost or added PCs")
    return 0
}
