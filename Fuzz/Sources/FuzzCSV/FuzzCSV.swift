import FuzzSupport
import Shardwise

/// The CSV reader on text held in memory (`CSVReader.parse(text:)`, the path the file reader
/// shares). Option byte: bits 0–1 the header (detect, yes, no), bits 2–3 the delimiter (detect,
/// comma, tab, semicolon), bits 4–5 the target (last, column 0, column "y", column 1). Any input
/// must give a dataset whose shape agrees with itself, or a thrown error — never a trap.
public func fuzzCSV(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    var input = FuzzInput(data, count)
    let o = input.option()
    let header: Bool? = [nil, true, false, nil][Int(o & 3)]
    let delimiter: Character? = [nil, ",", "\t", ";"][Int(o >> 2 & 3)]
    let target: String? = [nil, "0", "y", "1"][Int(o >> 4 & 3)]
    let text = String(decoding: input.bytes, as: UTF8.self)
    if let d = try? CSVReader.parse(text: text, source: "fuzz", target: target, header: header, delimiter: delimiter) {
        precondition(d.y.count == d.rows, "CSV: \(d.y.count) targets for \(d.rows) rows")
        precondition(d.x.rows == d.rows && d.x.columns == d.features, "CSV: matrix shape disagrees with the dataset's")
    }
    return 0
}

@main
enum FuzzCSVMain {
    static func main() {
        capMemory()
        runFuzzer { data, count in fuzzCSV(data, count) }
    }
}
