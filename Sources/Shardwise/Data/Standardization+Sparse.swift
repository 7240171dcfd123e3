extension Standardization {
    /// Standardisation for sparse data: every column scaled to unit root-mean-square, *not
    /// centred* — subtracting a column's mean would turn every zero of it into a nonzero and the
    /// CSR into a dense matrix. A column with no nonzeros is left as it is. The statistics come
    /// back as a `Standardization` with every mean 0 and `deviations` the RMS, so that
    /// `originalCoefficients(_:)` maps coefficients back (wⱼ / rmsⱼ) as for dense data; targets are
    /// never shifted (`targetMean` 0), and there is no intercept to recover.
    ///
    /// One pass over the nonzeros for the sums of squares, one to scale; the index arrays are
    /// shared with the input, only the values are new.
    public static func fitScaling<Scalar: BLASScalar>(_ data: SparseDataset<Scalar>) -> (Standardization, SparseDataset<Scalar>) {
        let n = max(data.rows, 1), d = data.features
        var squares = [Double](repeating: 0, count: d)
        let columns = data.x.columnIndices, values = data.x.values
        for k in values.indices { let v = Double(values[k]); squares[Int(columns[k])] += v * v }
        let rms = squares.map { ($0 / Double(n)).squareRoot() }
        let untouched = (0..<d).filter { rms[$0] == 0 }
        let s = Standardization(means: [Double](repeating: 0, count: d), deviations: rms, constantColumns: untouched, targetMean: 0)
        return (s, s.scaling(data))
    }

    /// Divides each nonzero by its column's deviation (no centring: for `fitScaling`'s statistics).
    public func scaling<Scalar: BLASScalar>(_ data: SparseDataset<Scalar>) -> SparseDataset<Scalar> {
        let columns = data.x.columnIndices
        let scaled = data.x.values.indices.map { k -> Scalar in
            let dev = deviations[Int(columns[k])]
            return dev > 0 ? Scalar(Double(data.x.values[k]) / dev) : data.x.values[k]
        }
        let x = CSRMatrix<Scalar>(storage: CSRStorage(rows: data.rows, columns: data.features, rowOffsets: data.x.rowOffsets,
                                                      columnIndices: columns, values: scaled))
        return SparseDataset(x: x, y: data.y, source: data.source, rowLines: data.rowLines)
    }
}
