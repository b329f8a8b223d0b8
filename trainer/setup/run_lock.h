// One run per run directory. Rank 0 holds an open-file-description lock (fcntl F_OFD_SETLK,
// a write lock on the whole file) on <run>/lock for the whole run, with a holder record in
// it: host, pid, SLURM job, start time. A second run on the directory is refused (exit 2)
// naming the holder. The kernel drops the lock when the holder's process ends, however it
// ends, so a record with no lock held is a dead holder's: taken over, saying so. A clean end
// empties the record. The file is never removed: two later runs could otherwise lock two
// different files of the same name.
// Across nodes this needs a file system that shares POSIX locks (docs/slurm.md): Lustre
// mounted with -o flock, NFSv4 (v3 with lockd); with -o localflock the lock is per node.
#pragma once

#include <memory>
#include <string>

namespace kd {

class RunLock {
 public:
  // Locks dir/lock (dir exists) and writes this process's record into it. InputError naming
  // the holder when another process holds it. `note` gets a line to print when a dead
  // holder's record was taken over, or when the file system cannot lock at all (the run then
  // goes on unguarded).
  static std::unique_ptr<RunLock> acquire(const std::string& dir, std::string& note);
  // Without creating or taking anything: InputError naming the holder when a live process
  // holds dir/lock. Before a run reads a run directory (its checkpoints), so a second run is
  // refused by name rather than tripping over the holder's files; acquire() is still the guard.
  static void check_free(const std::string& dir);
  ~RunLock();  // empties the record, then closes the file (which drops the lock)
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  RunLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

}  // namespace kd
