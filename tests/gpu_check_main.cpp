// main() of the GPU check's one binary (scripts/gpu-check.sh): the CUDA tests, or with
// --bench-teacher the teacher-forward timing (tests/gpu_bench_teacher.cpp), or with `kdtrain ARGS`
// kdtrain's command line (the KD-step benchmark). One binary, so the
// bundle carries one copy of OpenBLAS and the other libraries.
#include <gtest/gtest.h>

#include <string>

int bench_teacher_main(int argc, char** argv);
int kdtrain_main(int argc, char** argv);

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--bench-teacher") return bench_teacher_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "kdtrain") return kdtrain_main(argc - 1, argv + 1);  // kdtrain's CLI
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
