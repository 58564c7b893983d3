// Runs the fuzz target over files (a corpus or crash reproducers) when the
// build has no libFuzzer; with no arguments, over generated seed frames.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::ifstream f(argv[i], std::ios::binary);
    std::vector<uint8_t> d((std::istreambuf_iterator<char>(f)), {});
    LLVMFuzzerTestOneInput(d.data(), d.size());
  }
  if (argc > 1) return 0;
  // Seeds: a valid media frame with random mutations and lengths.
  std::vector<uint8_t> seed = {0x00, 2, 0, 0, 0, 0, 1, 0xaa, 0, 0, 0, 0, 1, 0x08, 0x00,
                               0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 10,
                               192, 0, 2, 1, 0x0f, 0xa0, 0x4e, 0x20, 0, 20, 0, 0,
                               0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    std::vector<uint8_t> d = seed;
    for (int k = rng() % 6; k > 0; --k) d[rng() % d.size()] = uint8_t(rng());
    if (rng() % 3 == 0) d.resize(rng() % (d.size() + 40), 0x55);
    LLVMFuzzerTestOneInput(d.data(), d.size());
  }
  std::puts("fuzz replay: 200000 inputs, no crash");
  return 0;
}
