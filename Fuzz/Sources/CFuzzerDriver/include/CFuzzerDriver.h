#ifndef CFUZZERDRIVER_H
#define CFUZZERDRIVER_H
#include <stddef.h>
#include <stdint.h>
// libFuzzer's entry point for programs with their own main (LLVM compiler-rt/lib/fuzzer/FuzzerDriver.cpp):
// parses libFuzzer's flags from argv and calls `test` once per input. SwiftPM links every
// executable's `main` itself, so the harnesses call this instead of using libFuzzer's main.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*test)(const uint8_t *data, size_t size));
#endif
