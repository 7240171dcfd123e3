import Foundation
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

extension TestData {
    /// Writes a seeded binary-classification LIBSVM file: `rows` rows of about `nonzerosPerRow`
    /// distinct columns (uniform over `columns`, written in increasing order; values in [0.5, 1.5)),
    /// labels −1/+1 drawn from a planted logistic model. Returns the path.
    @discardableResult
    public static func writeLIBSVM(path: String, rows: Int, columns: Int, nonzerosPerRow: Int, seed: UInt64) throws -> String {
        var rng = SplitMix64(seed: seed)
        func uniform() -> Double { Double(rng.next() >> 11) * 0x1.0p-53 }
        let planted = (0..<columns).map { _ in 4 * uniform() - 2 }
        var text = ""
        text.reserveCapacity(rows * nonzerosPerRow * 14)
        for _ in 0..<rows {
            var chosen = Set<Int>()
            while chosen.count < min(nonzerosPerRow, columns) { chosen.insert(Int(rng.next() % UInt64(columns))) }
            var line = "", z = 0.0
            for j in chosen.sorted() {
                let v = (0.5 + uniform()).rounded(toPlaces: 4)
                z += v * planted[j]
                line += " \(j + 1):\(v)"
            }
            let label = uniform() < 1 / (1 + exp(-z)) ? "+1" : "-1"
            text += label + line + "\n"
        }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

extension Double {
    fileprivate func rounded(toPlaces places: Int) -> Double {
        let scale = pow(10, Double(places))
        return (self * scale).rounded() / scale
    }
}
