#if MPI
import Shardwise

/// How Shardwise's 32-bit tags become MPI tags, and back.
///
/// Shardwise tags are `UInt32`: strategies use small numbers (1, 2, 11, …) and the collectives use
/// `Tag.reservedBase + k` (2³¹ + k). MPI tags are `Int32` in `0...MPI_TAG_UB`, and the standard
/// only promises MPI_TAG_UB ≥ 32767 (OpenMPI gives 2³¹ − 1, others less). So the MPI tag space is
/// cut in two halves of `half = (MPI_TAG_UB + 1) / 2` tags (16384 at the guaranteed minimum):
///
/// | Shardwise tag            | MPI tag        |
/// |--------------------------|----------------|
/// | `t < half`               | `t`            |
/// | `reservedBase + k`, `k < half` | `half + k` |
/// | anything else            | refused: `CommunicationError.unsupported` |
///
/// The map is one-to-one, so every Shardwise tag keeps its own MPI tag: MPI's matching does the
/// per-tag selection, and MPI's non-overtaking rule (messages between one pair with one tag and
/// communicator are received in the order sent) is exactly the `Communicator` FIFO contract.
/// The alternative — one MPI tag for everything with the real tag inside the payload — would
/// force a local queue of messages received for other tags, and lose MPI's own matching.
struct MPITagMap: Sendable {
    /// Tags per half.
    let half: UInt32

    init(tagUpperBound: Int) {
        half = UInt32(clamping: (max(tagUpperBound, 32767) + 1) / 2)
    }

    func mpiTag(_ tag: Tag) throws -> Int32 {
        let t = tag.rawValue
        if t < half { return Int32(t) }
        if t >= Tag.reservedBase && t - Tag.reservedBase < half { return Int32(half + (t - Tag.reservedBase)) }
        throw CommunicationError.unsupported(
            backend: "mpi", operation: "\(tag)",
            reason: "MPI tags stop at \(2 * Int(half) - 1) here; tags below \(half) and collective tags below reservedBase + \(half) fit")
    }

    func tag(_ mpiTag: Int32) -> Tag {
        let t = UInt32(mpiTag)
        return t < half ? Tag(t) : Tag(Tag.reservedBase + (t - half))
    }
}
#endif
