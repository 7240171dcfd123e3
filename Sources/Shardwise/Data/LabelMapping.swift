/// What to do with a file's labels before training.
///
/// Binary LIBSVM datasets (rcv1, news20, a9a…) label the classes −1 and +1; logistic regression
/// here takes 0 and 1. Mapping is asked for, never silent, and its result (`LabelChange`) says
/// whether it happened, so that a report can say so.
public enum LabelMapping: String, Codable, Sendable, CaseIterable {
    /// The labels as read.
    case keep
    /// −1 → 0 and +1 → 1, when every label is −1 or +1 and at least one is −1; otherwise the
    /// labels are kept (0/1 labels are already what logistic regression takes; anything else is
    /// for `validateTargets` to refuse, naming the line).
    case signedToBinary

    /// Applies the mapping to `y` in place.
    public func apply<Scalar: BLASScalar>(to y: inout [Scalar]) -> LabelChange {
        guard self == .signedToBinary else { return .unchanged }
        var negatives = 0
        for v in y {
            if v == -1 { negatives += 1 } else if v != 1 { return .unchanged }
        }
        guard negatives > 0 else { return .unchanged }
        for i in y.indices { y[i] = y[i] == -1 ? 0 : 1 }
        return .signedToBinary(negatives: negatives, positives: y.count - negatives)
    }
}

/// What a `LabelMapping` did.
public enum LabelChange: Equatable, Sendable, CustomStringConvertible {
    case unchanged
    /// −1/+1 became 0/1: `negatives` rows had −1, `positives` had +1.
    case signedToBinary(negatives: Int, positives: Int)

    public var description: String {
        switch self {
        case .unchanged: return "labels as read"
        case .signedToBinary(let n, let p): return "labels −1/+1 mapped to 0/1 (\(n) rows of −1, \(p) of +1)"
        }
    }
}
