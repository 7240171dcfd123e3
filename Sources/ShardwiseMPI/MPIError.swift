#if MPI
import CMPI

/// Errors of the MPI layer itself (communication failures are `CommunicationError`s, as on every
/// backend).
public enum MPIError: Error, CustomStringConvertible {
    /// An MPI call returned an error code (MPI_ERRORS_RETURN is set, so errors come back here
    /// instead of aborting the job).
    case call(String, code: Int32, message: String)
    /// MPI gave less thread support than MPI_THREAD_SERIALIZED: a node's async code may resume on
    /// any thread of the cooperative pool, one at a time, so it needs at least that level.
    case threadSupport(provided: Int32)
    /// MPI was used after `MPIWorld.finalize()`.
    case finalized
    /// A job asked for something that cannot run under MPI (named in the message).
    case invalidJob(String)

    public var description: String {
        switch self {
        case .call(let name, let code, let message): return "\(name) failed (MPI error \(code)): \(message)"
        case .threadSupport(let provided):
            return "MPI provides thread level \(provided), below MPI_THREAD_SERIALIZED; use an MPI built with thread support"
        case .finalized: return "MPI has been finalized; no MPI call is possible any more"
        case .invalidJob(let why): return why
        }
    }
}

/// Throws `MPIError.call` unless `code` is MPI_SUCCESS.
@inline(__always)
func mpiCheck(_ code: Int32, _ name: @autoclosure () -> String) throws {
    guard code != shardwise_mpi_success() else { return }
    throw MPIError.call(name(), code: code, message: mpiErrorString(code))
}

/// MPI's text for an error code.
func mpiErrorString(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
    var length: Int32 = 0
    guard MPI_Error_string(code, &buffer, &length) == shardwise_mpi_success() else { return "unknown error" }
    return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
#endif
