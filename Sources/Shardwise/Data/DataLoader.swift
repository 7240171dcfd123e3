/// Loads a `DataSource` into a dataset of the requested precision.
public enum DataLoader {
    /// The dense form of any source (a sparse one densified, with a memory check): for the tools
    /// that need dense rows (`solve`, the simulator's calibration).
    public static func load<Scalar: BLASScalar>(_ source: DataSource, as: Scalar.Type = Scalar.self) throws -> Dataset<Scalar> {
        switch source {
        case .synthetic(let spec):
            return try spec.generate(Scalar.self)
        case .sparseSynthetic:
            return try loadData(source, dense: true, as: Scalar.self).data.densified()
        case .file(let path, let format, let target):
            guard let format = format ?? DataFormat(pathExtension: path) else {
                throw DataError.invalid(
                    "\(path): cannot tell the format from the extension; pass --format csv|libsvm|npy|npz")
            }
            let data: Dataset<Double>
            switch format {
            case .csv: data = try CSVReader.read(path: path, target: target)
            case .libsvm:
                try refuseTarget(target, path: path)
                data = try LIBSVMReader.read(path: path)
            case .npy: data = try NPYReader.readDataset(path: path, target: target)
            case .npz: return try loadData(source, dense: true, as: Scalar.self).data.densified()
            }
            return data.converted(to: Scalar.self)
        }
    }

    /// A job's data as it trains: LIBSVM, `.npz` and sparse synthetic specs as CSR (never
    /// densified) unless `dense`; CSV, `.npy` and dense synthetic specs dense.
    ///
    /// - Parameter labels: `.signedToBinary` maps −1/+1 labels of a LIBSVM or `.npz` source to 0/1
    ///   (logistic regression asks for it: binary LIBSVM datasets label their classes ±1).
    /// - Returns: the data, and what was done to its labels (for the report's notes).
    public static func loadData<Scalar: BLASScalar>(
        _ source: DataSource, dense: Bool = false, labels: LabelMapping = .keep, as _: Scalar.Type = Scalar.self
    ) throws -> (data: TrainingData<Scalar>, labels: LabelChange) {
        var sparse: SparseDataset<Scalar>
        var change = LabelChange.unchanged
        switch source {
        case .synthetic:
            return (.dense(try load(source)), .unchanged)
        case .sparseSynthetic(let spec):
            sparse = try spec.generate(Scalar.self)
        case .file(let path, let format, let target):
            switch format ?? DataFormat(pathExtension: path) {
            case .libsvm:
                try refuseTarget(target, path: path)
                (sparse, change) = try LIBSVMReader.readSparse(path: path, labels: labels, as: Scalar.self)
            case .npz:
                guard let target else {
                    throw DataError.invalid("\(path): an .npz holds X only; give the targets as a 1-D .npy file (--target y.npy)")
                }
                let x = try NPZReader.readCSR(path: path, as: Scalar.self)
                let (shape, values) = try NPYReader.readArray(path: target)
                guard shape.count == 1 || (shape.count == 2 && shape[1] == 1) else {
                    throw DataError.invalid("\(target): the targets must be a 1-D array, got shape \(shape)")
                }
                guard values.count == x.rowCount else {
                    throw DataError.invalid("\(target): \(values.count) targets for the \(x.rowCount) rows of \(path)")
                }
                if let i = values.firstIndex(where: { !$0.isFinite }) {
                    throw DataError.nonFinite(file: target, location: "row \(i) (0-based)")
                }
                var y = values.map { Scalar($0) }
                change = labels.apply(to: &y)
                sparse = SparseDataset(x: x, y: y, source: path)
            default:
                // CSV and NPY keep their labels: −1/+1 there is refused with a hint, as before.
                return (.dense(try load(source)), .unchanged)
            }
        }
        if dense { return (.dense(try TrainingData.sparse(sparse).densified()), change) }
        return (.sparse(sparse), change)
    }

    private static func refuseTarget(_ target: String?, path: String) throws {
        if let target {
            throw DataError.invalid(
                "\(path): a LIBSVM file's target is its first field on each line; --target \(target) applies to CSV, NPY and NPZ only")
        }
    }
}
