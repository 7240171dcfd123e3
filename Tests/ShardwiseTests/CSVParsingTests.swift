import Foundation
import Testing
@testable import Shardwise
#if canImport(Glibc)
import Glibc
#endif

// The CSV reader's one-pass path for plain numeric records, held to independent references:
// `strtod` for every number, and a file generated here whose every value and line is known.
// Records the one-pass path does not take (quotes, blank lines, errors) go through the general
// path; these files mix both, in every chunking.

/// `strtod` on a Swift string: the C library's correctly rounded conversion.
private func cStrtod(_ text: String) -> Double {
    text.withCString { strtod($0, nil) }
}

/// A random decimal of 1–20 significant digits: a sign, the point anywhere (or nowhere), an
/// exponent (or none) mostly within Clinger's fast-path range and sometimes far outside it.
private func randomDecimal(_ rng: inout SplitMix64) -> String {
    let digits = 1 + Int(rng.next() % 20)
    var mantissa = ""
    for k in 0..<digits {
        let d = k == 0 ? 1 + rng.next() % 9 : rng.next() % 10
        mantissa.append(Character(UnicodeScalar(UInt8(ascii: "0") + UInt8(d))))
    }
    let point = Int(rng.next() % UInt64(digits + 2))
    if point <= digits {
        mantissa.insert(".", at: mantissa.index(mantissa.startIndex, offsetBy: point))
    }
    let sign = ["", "-", "+"][Int(rng.next() % 3)]
    switch rng.next() % 4 {
    case 0: return sign + mantissa
    case 1, 2: return sign + mantissa + (rng.next() % 2 == 0 ? "e" : "E") + String(Int(rng.next() % 61) - 30)
    default: return sign + mantissa + "e" + String(Int(rng.next() % 660) - 340)
    }
}

@Suite("CSV parsing against references")
struct CSVParsingTests {
    /// Correct rounding: every random decimal converts to the double `strtod` gives, bit for bit,
    /// through the whole-field parser and through the prefix scanner the one-pass path uses.
    @Test func roundsLikeStrtod() {
        var rng = SplitMix64(seed: 2026)
        var checked = 0
        for _ in 0..<60_000 {
            let text = randomDecimal(&rng)
            let expected = cStrtod(text)
            let got = DecimalParser.parse(text)
            if expected.isFinite {
                #expect(got == .value(expected), "'\(text)': \(got), strtod \(expected)")
                if got != .value(expected) { return }
                checked += 1
            } else {
                #expect(got == .nonFinite, "'\(text)'")
            }
            let bytes = Array((text + ",").utf8)
            let (value, end) = bytes.withUnsafeBufferPointer { DecimalParser.prefix($0.baseAddress!, from: 0, to: $0.count) }
            #expect(end == bytes.count - 1 && value?.bitPattern == expected.bitPattern, "'\(text)' as a prefix")
        }
        #expect(checked > 50_000)
    }

    /// A generated file: header, then rows whose fields are spelled every way the grammar allows
    /// (plain, padded, quoted, long, needing strtod), CRLF or LF endings, blank lines between.
    struct Generated {
        var text = ""
        var x: [Double] = []
        var y: [Double] = []
        var lines: [Int] = []
        var names: [String]
        /// The line and 0-based column of every field, to plant a bad one.
        var fieldStarts: [(line: Int, column: Int, offset: Int, count: Int)] = []

        init(rows: Int, columns: Int, seed: UInt64) {
            var rng = SplitMix64(seed: seed)
            names = (0..<columns).map { "c\($0)" }
            text = names.joined(separator: ",") + "\n"
            var line = 2
            for _ in 0..<rows {
                if rng.next() % 10 == 0 { text += rng.next() % 2 == 0 ? "\n" : " \r\n"; line += 1 }
                for c in 0..<columns {
                    var number: String
                    var value: Double
                    repeat {   // a finite value: strtod overflows on some random decimals
                        switch rng.next() % 4 {
                        case 0: number = String(format: "%.10g", Double(Int64(bitPattern: rng.next()) >> 11) * 0x1p-40)
                        case 1: number = String(Double(bitPattern: rng.next() & 0x3FFF_FFFF_FFFF_FFFF | 0x3000_0000_0000_0000))
                        case 2: number = String(Int(rng.next() % 2_000_000) - 1_000_000)
                        default: number = randomDecimal(&rng)
                        }
                        value = cStrtod(number)
                    } while !value.isFinite
                    let spelled: String
                    switch rng.next() % 8 {
                    case 0: spelled = " " + number + "\t"
                    case 1: spelled = "\"" + number + "\""
                    case 2: spelled = "\" " + number + " \" "
                    default: spelled = number
                    }
                    if c > 0 { text += "," }
                    fieldStarts.append((line, c, text.utf8.count, spelled.utf8.count))
                    text += spelled
                    if c == columns - 1 { y.append(value) } else { x.append(value) }
                }
                text += rng.next() % 3 == 0 ? "\r\n" : "\n"
                lines.append(line)
                line += 1
            }
        }
    }

    static let chunkSizes = [1, 5, 64, 4096, 1 << 20]

    @Test(arguments: chunkSizes)
    func readsGeneratedFile(chunkSize: Int) throws {
        let g = Generated(rows: 400, columns: 7, seed: 5)
        #expect(g.y.count == 400 && g.x.count == 400 * 6)
        let data = try CSVReader.parse(source: MemoryBytes(Array(g.text.utf8)), name: "g.csv", target: nil,
                                       header: nil, delimiter: nil, chunkSize: chunkSize)
        #expect(data.x.elements.map(\.bitPattern) == g.x.map(\.bitPattern))
        #expect(data.y.map(\.bitPattern) == g.y.map(\.bitPattern))
        #expect(data.rowLines == g.lines)
        #expect(data.featureNames == Array(g.names.dropLast()))
    }

    /// A bad number deep in the file (after many one-pass records, in any chunking) is named by its
    /// line, column and header name, whatever is wrong with it.
    @Test(arguments: ["1.2.3", "12a", "", "--1", "1e", "0x10"])
    func namesBadNumber(bad: String) throws {
        let g = Generated(rows: 300, columns: 5, seed: 9)
        let field = g.fieldStarts[g.fieldStarts.count * 2 / 3]
        var bytes = Array(g.text.utf8)
        bytes.replaceSubrange(field.offset..<(field.offset + field.count), with: Array(bad.utf8))
        let expected = bad.isEmpty ? "empty field; expected a number (missing values are not supported)"
                                   : "'\(bad)' is not a number"
        for chunkSize in Self.chunkSizes {
            do {
                _ = try CSVReader.parse(source: MemoryBytes(bytes), name: "g.csv", target: nil, header: nil,
                                        delimiter: nil, chunkSize: chunkSize)
                Issue.record("'\(bad)' at line \(field.line) was accepted")
            } catch let error as DataError {
                #expect(error == .malformed(file: "g.csv", location: "line \(field.line), column \(field.column + 1) ('c\(field.column)')",
                                            message: expected), "chunk \(chunkSize)")
            }
        }
    }

    /// Lines far longer than a chunk (here 100 000 fields, about 2 MB a line, against 1 MiB and
    /// 4 KiB chunks), with the shortest round-trip spellings, which must come back exactly.
    @Test(arguments: [4096, 1 << 20])
    func readsVeryLongLines(chunkSize: Int) throws {
        var rng = SplitMix64(seed: 3)
        let columns = 100_000
        var values: [[Double]] = []
        var text = ""
        for _ in 0..<3 {
            let row = (0..<columns).map { _ in Double(bitPattern: rng.next() >> 2 | 0x3000_0000_0000_0000) * (rng.next() % 2 == 0 ? 1 : -1) }
            values.append(row)
            text += row.map { "\($0)" }.joined(separator: ",") + "\r\n"
        }
        #expect(text.utf8.count / 3 > 1 << 20)
        let data = try CSVReader.parse(source: MemoryBytes(Array(text.utf8)), name: "wide.csv", target: nil,
                                       header: nil, delimiter: nil, chunkSize: chunkSize)
        #expect(data.rows == 3 && data.features == columns - 1)
        #expect(data.x.elements.map(\.bitPattern) == values.flatMap { $0.dropLast() }.map(\.bitPattern))
        #expect(data.y.map(\.bitPattern) == values.map { $0[columns - 1].bitPattern })
    }

    /// Tab-separated: a tab is then the delimiter, not padding, on both paths; the target in the middle.
    @Test func tabsDelimitWithTargetInside() throws {
        let text = "a\tb\tc\n1\t 2 \t3\r\n\"4\"\t5\t6\n7\t8\t9"
        let data = try CSVReader.parse(text: text, target: "b")
        #expect(data.x == Matrix(rows: 3, columns: 2, elements: [1, 3, 4, 6, 7, 9]))
        #expect(data.y == [2, 5, 8])
        #expect(data.rowLines == [2, 3, 4])
        let empty = "a\tb\n1\t\t\n"
        #expect(throws: DataError.malformed(file: "memory", location: "line 2", message: "expected 2 fields, found 3")) {
            try CSVReader.parse(text: empty)
        }
    }
}
