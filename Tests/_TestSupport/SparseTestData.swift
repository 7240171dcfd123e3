import Shardwise

extension TestData {
    /// A seeded random CSR matrix: each entry nonzero with probability `density` (values in
    /// [-1, 1), never 0), and every `emptyEvery`-th row (0 = none) left empty.
    public static func csr<Scalar: BLASScalar>(rows: Int, columns: Int, density: Double, seed: UInt64,
                                              emptyEvery: Int = 0, as: Scalar.Type = Scalar.self) -> CSRMatrix<Scalar> {
        var rng = SplitMix64(seed: seed)
        var offsets: [Int64] = [0], indices: [Int32] = [], values: [Scalar] = []
        for i in 0..<rows {
            if emptyEvery == 0 || i % emptyEvery != emptyEvery - 1 {
                for j in 0..<columns where Double(rng.next() >> 11) * 0x1.0p-53 < density {
                    var v = Double(rng.next() >> 11) * 0x1.0p-52 - 1
                    if v == 0 { v = 0.5 }
                    indices.append(Int32(j))
                    values.append(Scalar(v))
                }
            }
            offsets.append(Int64(indices.count))
        }
        return try! CSRMatrix(rows: rows, columns: columns, rowOffsets: offsets, columnIndices: indices, values: values)
    }
}
