import FuzzSupport
import Shardwise

/// The NPY reader on bytes held in memory: as an array (`readArray(bytes:)`) and as a dataset
/// (`readDataset(bytes:)`, last column or column 0 the target). Option byte bit 0 picks the target.
/// An array's values fill its shape exactly; a dataset's shape agrees with itself.
public func fuzzNPY(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    var input = FuzzInput(data, count)
    let o = input.option()
    let bytes = input.bytes
    if let (shape, values) = try? NPYReader.readArray(bytes: bytes, source: "fuzz") {
        precondition(values.count == shape.reduce(1, *), "NPY: \(values.count) values for shape \(shape)")
    }
    if let d = try? NPYReader.readDataset(bytes: bytes, source: "fuzz", target: o & 1 == 0 ? nil : "0") {
        precondition(d.y.count == d.rows && d.x.rows == d.rows, "NPY: dataset shape disagrees with itself")
    }
    return 0
}

@main
enum FuzzNPYMain {
    static func main() {
        capMemory()
        runFuzzer { data, count in fuzzNPY(data, count) }
    }
}
