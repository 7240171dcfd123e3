// Placeholder API for the file readers; replaced by the real readers in this change set.
public enum CSVReader {
    public static func read(path: String, target: String?) throws -> Dataset<Double> {
        throw DataError.unreadable(file: path, reason: "CSV reader not built yet")
    }
}
public enum LIBSVMReader {
    public static func read(path: String) throws -> Dataset<Double> {
        throw DataError.unreadable(file: path, reason: "LIBSVM reader not built yet")
    }
}
public enum NPYReader {
    public static func readDataset(path: String, target: String?) throws -> Dataset<Double> {
        throw DataError.unreadable(file: path, reason: "NPY reader not built yet")
    }
}
