import FuzzSupport
import Shardwise

/// The LIBSVM reader on text held in memory (`LIBSVMReader.parse(text:)`). Option byte: the
/// feature count to ask for (0–254: that many; 255: as the data says). A dataset or a thrown
/// error, never a trap, and a dataset's shape agrees with itself.
public func fuzzLIBSVM(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    var input = FuzzInput(data, count)
    let o = input.option()
    let features: Int? = o == 255 ? nil : Int(o)
    let text = String(decoding: input.bytes, as: UTF8.self)
    if let d = try? LIBSVMReader.parse(text: text, source: "fuzz", features: features) {
        precondition(d.y.count == d.rows, "LIBSVM: \(d.y.count) labels for \(d.rows) rows")
        if let features { precondition(d.features == features, "LIBSVM: asked for \(features) features, got \(d.features)") }
    }
    return 0
}

@main
enum FuzzLIBSVMMain {
    static func main() {
        capMemory()
        runFuzzer { data, count in fuzzLIBSVM(data, count) }
    }
}
