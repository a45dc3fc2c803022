import CFuzzerDriver
import Glibc

// libFuzzer runs fuzzKernelPreflight (in FuzzKernelPreflight.swift) on every input; its flags are on the command line.
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzKernelPreflight))
