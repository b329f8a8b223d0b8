// The MPI communicator behind a Comm, for the libraries that take one themselves (parallel
// HDF5's MPI-IO driver). Kept out of comm.h so that only their callers see mpi.h.
#pragma once

#include <mpi.h>

#include "trainer/dist/comm.h"

namespace kd::dist {

// MPI_COMM_NULL for a single-process Comm.
MPI_Comm mpi_handle(const Comm& c);

}  // namespace kd::dist
