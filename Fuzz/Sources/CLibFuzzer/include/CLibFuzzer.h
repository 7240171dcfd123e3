#ifndef SHARDWISE_CLIBFUZZER_H
#define SHARDWISE_CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver, for a program that has its own main (the toolchain's libclang_rt.fuzzer
// defines it; -sanitize=fuzzer links it). SwiftPM gives every executable a main of its own, so
// the harnesses call this instead of relying on libFuzzer's main.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
