// The kdtrain binary: its commands live in kd_cli (cli/main.cpp's kdtrain_main), which the GPU
// check's bundle binary also links (scripts/gpu-check.sh), so one static OpenBLAS travels.
int kdtrain_main(int argc, char** argv);

int main(int argc, char** argv) { return kdtrain_main(argc, argv); }
