/// What the data must satisfy before any step is taken, so that a failure is blamed on its cause:
/// a NaN in the data, or values whose squares overflow, would otherwise surface iterations later
/// as a "divergence" that names the step size.
extension Dataset {
    /// Throws when X or y holds NaN or ∞, naming the first such entry (y first, then X by rows).
    /// The readers refuse non-finite text; this catches what they cannot see: data built in
    /// memory, and values beyond Float's range (±3.4e38) that became ∞ in float32.
    /// - Throws: `DataError.nonFinite` naming the source, the row and the column.
    public func checkFinite() throws {
        let d = features
        if let i = y.withUnsafeBufferPointer(Self.firstNonFinite) {
            throw DataError.nonFinite(file: source, location: "\(location(ofRow: i)), the target (\(y[i]) in \(Scalar.precisionName))")
        }
        let bad = x.withUnsafeBufferPointer(Self.firstNonFinite)
        if let k = bad, d > 0 {
            let (i, j) = (k / d, k % d)
            let name = featureNames.map { "'\($0[j])'" } ?? "\(j)"
            let value = x.withUnsafeBufferPointer { $0[k] }
            throw DataError.nonFinite(file: source, location: "\(location(ofRow: i)), column \(name) (\(value) in \(Scalar.precisionName))")
        }
    }

    /// The index of the first NaN or ∞, by a loop on the concrete type: called from generic code
    /// that is not specialised, `firstIndex(where:)` copied every element through its value
    /// witnesses (0.3 s of a 500 000 × 21 CSV's setup, more than reading it).
    private static func firstNonFinite(_ values: UnsafeBufferPointer<Scalar>) -> Int? {
        if let v = values as? UnsafeBufferPointer<Double> { return v.firstIndex { !$0.isFinite } }
        if let v = values as? UnsafeBufferPointer<Float> { return v.firstIndex { !$0.isFinite } }
        return values.firstIndex { !$0.isFinite }
    }
}

extension PreparedProblem {
    /// Throws when the loss or the gradient at w = 0 is not finite although the data is: values so
    /// large that their products overflow. No step has been taken, so the step size is not the cause.
    static func checkStartingPoint(_ data: TrainingData<Scalar>, objective: Objective) throws {
        let (loss, norm) = evaluate([Double](repeating: 0, count: data.features), on: data, objective: objective)
        guard loss.isFinite, norm.isFinite else {
            let largest: Double
            switch data {
            case .dense(let d): largest = d.x.withUnsafeBufferPointer { $0.reduce(0.0) { max($0, abs(Double($1))) } }
            case .sparse(let s): largest = s.x.values.reduce(0.0) { max($0, abs(Double($1))) }
            }
            let target = data.y.reduce(0.0) { max($0, abs(Double($1))) }
            throw DataError.invalid(
                "\(data.source): the loss or gradient at w = 0 is not finite (loss \(loss), |∇L| \(norm)) although every value is: "
                    + "the values are too large to square in \(Scalar.precisionName) (largest |x| \(largest), |y| \(target)); "
                    + "scale the data (--standardize) or train in float64 — the step size is not the cause")
        }
    }
}
