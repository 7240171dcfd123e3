/// Barrier by dissemination (Hensgen, Finkel & Manber, 1988): in round k every rank sends an empty
/// message to rank + 2ᵏ and waits for one from rank − 2ᵏ (mod m). After ⌈log₂ m⌉ rounds every rank
/// has heard, directly or not, from every other, so no rank leaves before all have arrived.
extension Communicator {
    public func barrier() async throws {
        guard size > 1 else { return }
        var distance = 1
        while distance < size {
            try await send([], to: (rank + distance) % size, tag: .barrier)
            _ = try await receive(from: .rank((rank - distance + size) % size), tag: .barrier)
            distance *= 2
        }
    }
}
