extension LIBSVMReader {
    /// Reads a LIBSVM/SVMlight file straight into CSR, never densifying: memory is the nonzeros
    /// (values, 32-bit columns), one 64-bit offset, label and line number per row.
    ///
    /// ```swift
    /// let (data, labels) = try LIBSVMReader.readSparse(path: "rcv1.svm", labels: .signedToBinary, as: Float.self)
    /// if labels != .unchanged { print(labels) }   // "labels −1/+1 mapped to 0/1 (…)"
    /// ```
    ///
    /// - Parameters:
    ///   - features: the number of features; an index above it is an error. `nil` uses the largest
    ///     index in the file.
    ///   - labels: what to do with the labels (`.signedToBinary` maps a −1/+1 file to 0/1).
    /// - Returns: the dataset, and what was done to its labels.
    /// - Throws: `DataError` naming the file and line.
    public static func readSparse<Scalar: BLASScalar>(
        path: String, features: Int? = nil, labels: LabelMapping = .keep, as _: Scalar.Type = Double.self
    ) throws -> (data: SparseDataset<Scalar>, labels: LabelChange) {
        try parseSparse(source: ReaderFile(path: path), name: path, features: features, labels: labels, as: Scalar.self)
    }

    /// `readSparse` on LIBSVM text held in memory; `source` is the name used in messages.
    public static func parseSparse<Scalar: BLASScalar>(
        text: String, source: String = "memory", features: Int? = nil, labels: LabelMapping = .keep,
        as _: Scalar.Type = Double.self
    ) throws -> (data: SparseDataset<Scalar>, labels: LabelChange) {
        try parseSparse(source: MemoryBytes(Array(text.utf8)), name: source, features: features, labels: labels, as: Scalar.self)
    }

    static func parseSparse<Scalar: BLASScalar>(
        source: some ChunkSource, name: String, features: Int?, labels mapping: LabelMapping, as _: Scalar.Type,
        chunkSize: Int = 1 << 20, maxRecordBytes: Int = RecordSplitter<MemoryBytes>.defaultMaxRecordBytes
    ) throws -> (data: SparseDataset<Scalar>, labels: LabelChange) {
        var rows = try scan(source: source, name: name, features: features, chunkSize: chunkSize,
                            maxRecordBytes: maxRecordBytes, as: Scalar.self)
        // The width sizes every model vector (w, g, a solver's history): one mistyped index must not
        // take the machine's memory when the lead's first d-vector is allocated.
        let widthSource = features == nil ? "the largest index, \(rows.width), is on line \(rows.widestLine)" : "features = \(rows.width)"
        try MemoryBudget.check(elements: rows.width, bytesPerElement: 8 * 8,
                               what: "\(name): eight model vectors of \(rows.width) float64 (\(widthSource))")
        let change = mapping.apply(to: &rows.labels)
        let x = CSRMatrix<Scalar>(trustedRows: rows.labels.count, columns: rows.width, rowOffsets: rows.offsets,
                                  columnIndices: rows.indices, values: rows.values)
        return (SparseDataset(x: x, y: rows.labels, source: name, rowLines: rows.lines), change)
    }
}
