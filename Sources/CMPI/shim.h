// OpenMPI for Swift. MPI_COMM_WORLD, MPI_DOUBLE, MPI_SUM, … are macros (pointers to OpenMPI's
// predefined objects) that Swift cannot import; the static inline functions below expose them.
#ifndef SHARDWISE_CMPI_SHIM_H
#define SHARDWISE_CMPI_SHIM_H
#include <mpi.h>
#endif
