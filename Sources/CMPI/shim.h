// OpenMPI for Swift.
//
// MPI_COMM_WORLD, MPI_DOUBLE, MPI_SUM, MPI_IN_PLACE, MPI_STATUS_IGNORE, … are macros: in OpenMPI
// they expand to casts of the addresses of predefined objects (`&ompi_mpi_comm_world`), which
// Swift's Clang importer cannot turn into constants. Each gets a `static inline` function below —
// no code of its own, just the macro made callable. Plain integer macros (MPI_SUCCESS,
// MPI_ANY_TAG, MPI_THREAD_SERIALIZED) import as they are and are wrapped only for symmetry.
#ifndef SHARDWISE_CMPI_SHIM_H
#define SHARDWISE_CMPI_SHIM_H
#include <mpi.h>

// MARK: - Communicators, datatypes, operations
static inline MPI_Comm shardwise_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm shardwise_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype shardwise_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype shardwise_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype shardwise_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op shardwise_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Info shardwise_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline MPI_Errhandler shardwise_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }

// MARK: - Sentinels
static inline void *shardwise_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *shardwise_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *shardwise_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline MPI_Request shardwise_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Message shardwise_mpi_message_null(void) { return MPI_MESSAGE_NULL; }
static inline int shardwise_mpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline int shardwise_mpi_any_tag(void) { return MPI_ANY_TAG; }
static inline int shardwise_mpi_success(void) { return MPI_SUCCESS; }
static inline int shardwise_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int shardwise_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }

// MARK: - Attributes
/// MPI_TAG_UB of `comm`: the largest tag a message may carry (at least 32767 by the standard).
/// The attribute's value is a pointer to an int, which is awkward to read from Swift.
static inline int shardwise_mpi_tag_upper_bound(MPI_Comm comm) {
    int *value = 0;
    int found = 0;
    if (MPI_Comm_get_attr(comm, MPI_TAG_UB, &value, &found) != MPI_SUCCESS || !found || !value) {
        return 32767;
    }
    return *value;
}

/// The sender and tag of a status (its fields have upper-case names that read badly in Swift).
static inline int shardwise_mpi_status_source(const MPI_Status *status) { return status->MPI_SOURCE; }
static inline int shardwise_mpi_status_tag(const MPI_Status *status) { return status->MPI_TAG; }

#endif
