/// Loads a `DataSource` into a dataset of the requested precision.
public enum DataLoader {
    public static func load<Scalar: BLASScalar>(_ source: DataSource, as: Scalar.Type = Scalar.self) throws -> Dataset<Scalar> {
        switch source {
        case .synthetic(let spec):
            return try spec.generate(Scalar.self)
        case .file(let path, let format, let target):
            guard let format = format ?? DataFormat(pathExtension: path) else {
                throw DataError.invalid(
                    "\(path): cannot tell the format from the extension; pass --format csv|libsvm|npy")
            }
            let data: Dataset<Double>
            switch format {
            case .csv: data = try CSVReader.read(path: path, target: target)
            case .libsvm:
                if let target {
                    throw DataError.invalid(
                        "\(path): a LIBSVM file's target is its first field on each line; --target \(target) applies to CSV and NPY only")
                }
                data = try LIBSVMReader.read(path: path)
            case .npy: data = try NPYReader.readDataset(path: path, target: target)
            }
            return data.converted(to: Scalar.self)
        }
    }
}
