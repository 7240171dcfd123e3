#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads delimited text (CSV, TSV, semicolon-separated) of numbers into a dataset.
///
/// The first record is a header when any of its fields is not a number (or when `header` says
/// so); feature names then come from it. The target is the last column unless `target` names a
/// column (by header name, or by 0-based index). Fields may be quoted (`"1,5"` is one field,
/// `""` inside quotes is a quote, a quoted field may span lines); blank lines are skipped; a UTF-8
/// byte-order mark is ignored. Missing values are not supported: every field must be a finite
/// number.
///
/// ```swift
/// let data = try CSVReader.read(path: "houses.csv", target: "price")
/// ```
///
/// Errors are `DataError`s naming the file, the line (and 1-based column) and what was expected:
/// `houses.csv:line 7: expected 5 fields, found 4`,
/// `houses.csv:line 3, column 2: 'abc' is not a number`.
///
/// The file is read in chunks and parsed as bytes, so memory stays near the size of the result.
/// A record of plain numbers, the common case, is parsed in one pass straight into X; any other
/// record (the header, quotes, a blank line, an error) is read again by the general path
/// (`splitFields`, then each field), which also names what is wrong.
public enum CSVReader {
    /// Reads a delimited text file.
    ///
    /// - Parameters:
    ///   - target: the target column, by header name or 0-based index; `nil` means the last column.
    ///   - header: whether the first record is a header; `nil` detects it (a header has a field
    ///     that is not a number).
    ///   - delimiter: the field separator; `nil` picks the most frequent of `,`, tab and `;` in the
    ///     first record (comma when none occurs).
    public static func read(
        path: String, target: String?, header: Bool? = nil, delimiter: Character? = nil
    ) throws -> Dataset<Double> {
        let file = try ReaderFile(path: path)
        return try parse(source: file, name: path, target: target, header: header, delimiter: delimiter)
    }

    /// Parses delimited text held in memory; `source` is the name used in messages.
    public static func parse(
        text: String, source: String = "memory", target: String? = nil, header: Bool? = nil,
        delimiter: Character? = nil
    ) throws -> Dataset<Double> {
        try parse(source: MemoryBytes(Array(text.utf8)), name: source, target: target, header: header,
                  delimiter: delimiter)
    }

    static func parse(
        source: some ChunkSource, name: String, target: String?, header: Bool?, delimiter: Character?,
        chunkSize: Int = 1 << 20, maxRecordBytes: Int = RecordSplitter<MemoryBytes>.defaultMaxRecordBytes
    ) throws -> Dataset<Double> {
        var fixedDelimiter: UInt8?
        if let delimiter {
            guard let ascii = delimiter.asciiValue, ascii != UInt8(ascii: "\""), ascii != UInt8(ascii: "\n") else {
                throw DataError.invalid("CSV delimiter must be one ASCII character other than a quote or newline, got '\(delimiter)'")
            }
            fixedDelimiter = ascii
        }
        let scope = NumericLocaleScope()
        defer { scope.end() }

        let records = RecordSplitter(source: source, name: name, quoting: true, delimiter: fixedDelimiter,
                                     chunkSize: chunkSize, maxRecordBytes: maxRecordBytes)
        var fields: [FieldSpan] = []

        // The first non-blank record: delimiter, header, column count, target column.
        var first: (line: Int, fields: [String])?
        var firstRecordLine = 0
        var firstIsHeader = false
        var columnCount = 0
        var delimiterByte = UInt8(ascii: ",")
        var xs = MatrixBuilder()
        var ys: [Double] = []
        var lines: [Int] = []
        var targetColumn = 0
        var names: [String]?
        // One record's numbers, before they go to X and y.
        var row = UnsafeMutableBufferPointer<Double>(start: nil, count: 0)
        defer { row.deallocate() }

        while let (record, line) = try records.next() {
            // The common record, plain numbers, in one pass; everything else (the first record,
            // blank lines, quotes, and every error) takes the general path, which also names the error.
            if first == nil || !parseNumbers(record, delimiter: delimiterByte, into: row) {
                if isBlank(record) { continue }
                var bytes = record
                if first == nil, line == 1, bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF {
                    bytes = UnsafeBufferPointer(rebasing: bytes[3...])   // UTF-8 byte-order mark
                }
                if first == nil {
                    delimiterByte = fixedDelimiter ?? detectDelimiter(bytes)
                    records.delimiter = delimiterByte
                    try splitFields(bytes, delimiter: delimiterByte, into: &fields, file: name, line: line)
                    let texts = fields.map { $0.string(in: bytes) }
                    first = (line, texts)
                    firstRecordLine = line
                    columnCount = fields.count
                    guard columnCount >= 2 else {
                        throw DataError.malformed(
                            file: name, location: "line \(line)",
                            message: "expected at least 2 columns (features and a target), found 1"
                                + " (delimiter '\(printable(delimiterByte))')")
                    }
                    firstIsHeader = header ?? texts.contains { text in
                        !text.allSatisfy { $0 == " " || $0 == "\t" } && !DecimalParser.isNumberLike(text)
                    }
                    names = firstIsHeader ? texts.map { $0.trimmingSpaces() } : nil
                    if let names { try refuseDuplicates(names, file: name, line: line) }
                    targetColumn = try resolveTarget(target, columns: columnCount, names: names, file: name)
                    row = .allocate(capacity: columnCount)
                    if firstIsHeader { continue }
                } else {
                    try splitFields(bytes, delimiter: delimiterByte, into: &fields, file: name, line: line)
                    guard fields.count == columnCount else {
                        throw DataError.malformed(
                            file: name, location: "line \(line)",
                            message: "expected \(columnCount) fields, found \(fields.count)")
                    }
                }
                for (c, field) in fields.enumerated() {
                    row[c] = try field.number(in: bytes, file: name, line: line, column: c, names: names)
                }
            }
            if ys.isEmpty {
                // Now the shape is known. X starts with room for about a chunk of records like this
                // one, and is then sized from the bytes per row seen so far.
                xs = MatrixBuilder(columns: columnCount - 1, rows: (1 << 20) / (record.count + 1) + 1024)
                // (Reserved array pages that are never written cost nothing.)
                let rows = (source.knownSize ?? 0) / (record.count + 1) + 1024
                ys.reserveCapacity(rows)
                lines.reserveCapacity(rows)
            }
            if xs.isFull {
                let projected = Double(xs.rows) * Double(source.knownSize ?? 0) / Double(max(records.offset, 1))
                xs.grow(to: max(xs.rows + xs.rows / 2, Int(projected * 1.02) + 1024))
            }
            xs.append(UnsafeBufferPointer(row), skipping: targetColumn)
            ys.append(row[targetColumn])
            lines.append(line)
        }

        guard first != nil else {
            throw DataError.malformed(file: name, location: "line 1",
                                      message: "the file is empty; expected a header or a row of numbers")
        }
        guard !ys.isEmpty else {
            throw DataError.malformed(file: name, location: "line \(firstRecordLine)",
                                      message: "no data rows after the header; expected rows of numbers")
        }
        var featureNames = names
        featureNames?.remove(at: targetColumn)
        return Dataset(x: xs.matrix(), y: ys, featureNames: featureNames, source: name, rowLines: lines)
    }

    /// Reads a record of `row.count` plain numbers (no quotes) into `row`: false when it is anything
    /// else, for the general path to handle or to name the error. One pass over the bytes, with the
    /// grammar of `splitFields` followed by `DecimalParser.parse`.
    @inline(__always)
    static func parseNumbers(_ rec: UnsafeBufferPointer<UInt8>, delimiter: UInt8,
                             into row: UnsafeMutableBufferPointer<Double>) -> Bool {
        guard let p = rec.baseAddress, let out = row.baseAddress else { return false }
        let n = rec.count
        var i = 0
        for c in 0..<row.count {
            while i < n && isPad(p[i], delimiter) { i += 1 }
            let (value, end) = DecimalParser.prefix(p, from: i, to: n)
            guard let value, value.isFinite else { return false }
            out[c] = value
            i = end
            while i < n && isPad(p[i], delimiter) { i += 1 }
            if c + 1 < row.count {
                guard i < n && p[i] == delimiter else { return false }
                i += 1
            }
        }
        return i == n
    }

    /// Two columns of one name make `--target NAME` ambiguous and the report's coefficients
    /// unreadable; the header must name each column once.
    static func refuseDuplicates(_ names: [String], file: String, line: Int) throws {
        var first: [String: Int] = [:]
        for (c, n) in names.enumerated() {
            if let earlier = first[n] {
                throw DataError.malformed(
                    file: file, location: "line \(line)",
                    message: "columns \(earlier + 1) and \(c + 1) are both named '\(n)'; header names must be unique")
            }
            first[n] = c
        }
    }

    /// The column `target` designates: a header name first, then a 0-based index.
    static func resolveTarget(_ target: String?, columns: Int, names: [String]?, file: String) throws -> Int {
        guard let target else { return columns - 1 }
        let wanted = target.trimmingSpaces()
        if let names {
            let matches = names.indices.filter { names[$0] == wanted }
            if matches.count == 1 { return matches[0] }
            if matches.count > 1 {
                throw DataError.invalid(
                    "\(file): target '\(wanted)' is ambiguous: columns \(matches.map(String.init).joined(separator: ", ")) share that name")
            }
        }
        if let index = Int(wanted) {
            guard index >= 0 && index < columns else {
                throw DataError.invalid(
                    "\(file): target column \(index) is out of range: the file has \(columns) columns (0…\(columns - 1))")
            }
            return index
        }
        if let names {
            let shown = names.prefix(20).map { "'\($0)'" }.joined(separator: ", ") + (names.count > 20 ? ", …" : "")
            throw DataError.invalid("\(file): no column named '\(wanted)'; the columns are \(shown)")
        }
        throw DataError.invalid(
            "\(file): target '\(wanted)' is not a column index, and the file has no header to look the name up in")
    }

    /// The most frequent of comma, tab and semicolon outside quotes; comma on a tie or when none occurs.
    static func detectDelimiter(_ record: UnsafeBufferPointer<UInt8>) -> UInt8 {
        var comma = 0, tab = 0, semicolon = 0
        var inQuotes = false
        for b in record {
            switch b {
            case UInt8(ascii: "\""): inQuotes.toggle()
            case UInt8(ascii: ","): if !inQuotes { comma += 1 }
            case UInt8(ascii: "\t"): if !inQuotes { tab += 1 }
            case UInt8(ascii: ";"): if !inQuotes { semicolon += 1 }
            default: break
            }
        }
        if tab > comma && tab >= semicolon { return UInt8(ascii: "\t") }
        if semicolon > comma && semicolon > tab { return UInt8(ascii: ";") }
        return UInt8(ascii: ",")
    }

    static func printable(_ b: UInt8) -> String {
        b == UInt8(ascii: "\t") ? "\\t" : String(UnicodeScalar(b))
    }

    static func isBlank(_ record: UnsafeBufferPointer<UInt8>) -> Bool {
        record.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }

    /// Space, tab and CR around a field are padding, unless one of them is the delimiter.
    @inline(__always)
    static func isPad(_ b: UInt8, _ delimiter: UInt8) -> Bool {
        (b == 0x20 || b == 0x09 || b == 0x0D) && b != delimiter
    }

    /// Splits one record into field spans. Unquoted fields are trimmed of spaces and tabs; a quoted
    /// field ends at its closing quote, after which only spaces may come before the delimiter.
    static func splitFields(
        _ rec: UnsafeBufferPointer<UInt8>, delimiter: UInt8, into fields: inout [FieldSpan], file: String, line: Int
    ) throws {
        fields.removeAll(keepingCapacity: true)
        let n = rec.count
        let quote = UInt8(ascii: "\"")
        func isPad(_ b: UInt8) -> Bool { Self.isPad(b, delimiter) }
        var i = 0
        while true {
            while i < n && isPad(rec[i]) { i += 1 }
            if i < n && rec[i] == quote {
                let column = fields.count + 1
                i += 1
                let start = i
                var escaped = false
                var closed = false
                while i < n {
                    if rec[i] == quote {
                        if i + 1 < n && rec[i + 1] == quote { escaped = true; i += 2; continue }
                        closed = true
                        break
                    }
                    i += 1
                }
                guard closed else {
                    throw DataError.malformed(file: file, location: "line \(line), column \(column)",
                                              message: "unterminated quoted field; expected a closing '\"'")
                }
                fields.append(FieldSpan(start: start, end: i, quoted: true, escaped: escaped))
                i += 1
                while i < n && isPad(rec[i]) { i += 1 }
                if i < n && rec[i] != delimiter {
                    throw DataError.malformed(
                        file: file, location: "line \(line), column \(column)",
                        message: "unexpected '\(String(decoding: [rec[i]], as: UTF8.self))' after a closing quote; expected '\(printable(delimiter))' or the end of the line")
                }
            } else {
                let start = i
                while i < n && rec[i] != delimiter { i += 1 }
                var end = i
                while end > start && isPad(rec[end - 1]) { end -= 1 }
                fields.append(FieldSpan(start: start, end: end, quoted: false, escaped: false))
            }
            if i < n { i += 1 } else { break }   // past the delimiter: another field follows
        }
    }
}

/// X built row by row in the storage it ends in: reserved for an estimated row count, grown (one
/// copy) when the estimate falls short, and handed to the `Matrix` as it is, unless much of it is
/// unused.
struct MatrixBuilder {
    private var storage = AlignedStorage<Double>(count: 0)
    private let columns: Int
    private(set) var rows = 0

    init(columns: Int = 0, rows capacity: Int = 0) {
        self.columns = columns
        storage = AlignedStorage(count: capacity * columns)
    }

    var isFull: Bool { (rows + 1) * columns > storage.count }

    mutating func grow(to capacity: Int) {
        let bigger = AlignedStorage<Double>(count: max(capacity, rows + 1) * columns)
        bigger.base.update(from: storage.base, count: rows * columns)
        storage = bigger
    }

    /// Appends `row` without its element `skipped` (the target). The caller checks `isFull` first.
    @inline(__always)
    mutating func append(_ row: UnsafeBufferPointer<Double>, skipping skipped: Int) {
        guard let from = row.baseAddress else { return }
        let to = storage.base + rows * columns
        to.update(from: from, count: skipped)
        (to + skipped).update(from: from + skipped + 1, count: row.count - skipped - 1)
        rows += 1
    }

    func matrix() -> Matrix<Double> {
        if storage.count <= rows * columns + rows * columns / 4 + 4096 {
            return Matrix(rows: rows, columns: columns, storage: storage)
        }
        return Matrix(rows: rows, columns: columns, elements: UnsafeBufferPointer(start: storage.base, count: rows * columns))
    }
}

/// Where one CSV field lies within its record.
struct FieldSpan {
    var start: Int
    var end: Int
    var quoted: Bool
    /// Whether the quoted text contains `""` pairs that stand for one quote.
    var escaped: Bool

    func bytes(in rec: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        let raw = Array(rec[start..<end])
        guard escaped else { return raw }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        while i < raw.count {
            out.append(raw[i])
            i += (raw[i] == UInt8(ascii: "\"") && i + 1 < raw.count && raw[i + 1] == UInt8(ascii: "\"")) ? 2 : 1
        }
        return out
    }

    func string(in rec: UnsafeBufferPointer<UInt8>) -> String {
        String(decoding: bytes(in: rec), as: UTF8.self)
    }

    /// The field as a finite number, or an error naming line and (1-based) column.
    @inline(__always)
    func number(in rec: UnsafeBufferPointer<UInt8>, file: String, line: Int, column: Int, names: [String]?) throws -> Double {
        let outcome: DecimalParser.Outcome
        if escaped {
            outcome = bytes(in: rec).withUnsafeBufferPointer { DecimalParser.parse($0) }
        } else {
            outcome = DecimalParser.parse(UnsafeBufferPointer(rebasing: rec[start..<end]))
        }
        switch outcome {
        case .value(let v): return v
        case .nonFinite:
            throw DataError.nonFinite(file: file, location: location(line: line, column: column, names: names))
        case .notANumber:
            let text = string(in: rec)
            let message = text.isEmpty ? "empty field; expected a number (missing values are not supported)"
                                       : "'\(text.count > 40 ? text.prefix(40) + "…" : text)' is not a number"
            throw DataError.malformed(file: file, location: location(line: line, column: column, names: names),
                                      message: message)
        }
    }

    private func location(line: Int, column: Int, names: [String]?) -> String {
        if let names, column < names.count, !names[column].isEmpty {
            return "line \(line), column \(column + 1) ('\(names[column])')"
        }
        return "line \(line), column \(column + 1)"
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\r" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" { s.removeLast() }
        return String(s)
    }
}

// MARK: - Shared by the text readers (CSV and LIBSVM)

/// Bytes read in chunks: a file, or bytes already in memory.
protocol ChunkSource: AnyObject {
    /// Reads up to `buffer.count` bytes; 0 means the end.
    func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// The total size when known up front (regular files, memory).
    var knownSize: Int? { get }
}

/// A regular file opened for reading with POSIX calls; closed when released.
///
/// Only regular files are read. A FIFO would block `open` until a writer came (forever, if none
/// does), a device such as `/dev/zero` never ends, and neither has a size to check a header
/// against; so they are refused at once, by what they are. (`cp` a pipe's output to a file first.)
final class ReaderFile: ChunkSource {
    let path: String
    private let fd: Int32
    let knownSize: Int?

    init(path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw DataError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        try Self.requireRegular(info.st_mode, path: path)
        // O_NONBLOCK: should the path have become a FIFO since the stat, open still returns (and
        // the fstat below refuses it); on a regular file the flag changes nothing.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw DataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw DataError.unreadable(file: path, reason: reason)
        }
        do { try Self.requireRegular(info.st_mode, path: path) } catch { close(fd); throw error }
        self.path = path
        self.fd = fd
        self.knownSize = Int(info.st_size)
    }

    private static func requireRegular(_ mode: mode_t, path: String) throws {
        let kind: String
        switch mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: kind = "a directory"
        case S_IFIFO: kind = "a FIFO (named pipe)"
        case S_IFCHR: kind = "a character device"
        case S_IFBLK: kind = "a block device"
        case S_IFSOCK: kind = "a socket"
        default: kind = "not a regular file"
        }
        let advice = (mode & S_IFMT) == S_IFIFO || (mode & S_IFMT) == S_IFCHR ? " (copy a pipe's output to a file first)" : ""
        throw DataError.unreadable(file: path, reason: "it is \(kind); data must be a regular file\(advice)")
    }

    deinit { close(fd) }

    func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while true {
            let got = read(fd, base, buffer.count)
            if got >= 0 { return got }
            if errno == EINTR { continue }
            throw DataError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
    }
}

/// Bytes in memory, served in chunks like a file.
final class MemoryBytes: ChunkSource {
    private let bytes: [UInt8]
    private var position = 0
    var knownSize: Int? { bytes.count }

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = min(buffer.count, bytes.count - position)
        guard count > 0 else { return 0 }
        bytes.withUnsafeBytes { src in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[position..<(position + count)]))
        }
        position += count
        return count
    }
}

/// Splits a byte stream into records, reading a chunk at a time. A record is a line; with
/// `quoting`, a newline inside a quoted CSV field does not end it. The bytes handed out stay valid
/// until the next call and are followed by a NUL byte.
///
/// Memory stays near one chunk plus the longest record. A record may not exceed `maxRecordBytes`:
/// a binary file with no newline, or a CSV quote that is never closed, would otherwise be read
/// whole (and the buffer doubled past it) before the first line could be called bad. A NUL byte
/// in the first chunk marks a binary file, refused at once.
final class RecordSplitter<Source: ChunkSource> {
    /// The longest record read by default: far beyond any real line (a million features), far
    /// below a machine's memory.
    static var defaultMaxRecordBytes: Int { 256 << 20 }

    private let source: Source
    private let name: String
    private let maxRecordBytes: Int
    private(set) var bytesRead = 0
    /// Where the next record starts in the stream: the bytes handed out so far.
    var offset: Int { bytesRead - (filled - start) }
    private let quoting: Bool
    /// The field delimiter, for quote tracking; until it is known, `,`, tab and `;` all count.
    var delimiter: UInt8?
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var filled = 0, start = 0, scan = 0
    private var eof = false
    private var nextLine = 1
    // Quote state of the record being scanned: 0 field start, 1 unquoted text, 2 in quotes,
    // 3 a quote seen inside quotes (closing, or the first of a `""` pair).
    private var state = 0
    private var newlinesInside = 0

    init(source: Source, name: String, quoting: Bool, delimiter: UInt8? = nil, chunkSize: Int = 1 << 20,
         maxRecordBytes: Int = RecordSplitter.defaultMaxRecordBytes) {
        self.source = source
        self.name = name
        self.maxRecordBytes = max(maxRecordBytes, 1)
        self.quoting = quoting
        self.delimiter = delimiter
        capacity = max(chunkSize, 1)
        buffer = .allocate(capacity: capacity + 1)
    }

    deinit { buffer.deallocate() }

    /// The next record and the line it starts on, or nil at the end.
    func next() throws -> (UnsafeBufferPointer<UInt8>, line: Int)? {
        while true {
            if let end = scanForEnd() {
                buffer[end] = 0
                let record = UnsafeBufferPointer(start: buffer + start, count: end - start)
                let line = nextLine
                nextLine += 1 + newlinesInside
                newlinesInside = 0
                state = 0
                start = end + 1
                scan = start
                return (record, line)
            }
            if eof {
                guard start < filled else { return nil }
                buffer[filled] = 0
                let record = UnsafeBufferPointer(start: buffer + start, count: filled - start)
                let line = nextLine
                start = filled
                scan = filled
                return (record, line)
            }
            if start > 0 {
                memmove(buffer, buffer + start, filled - start)
                filled -= start
                scan -= start
                start = 0
            }
            if filled == capacity {
                guard filled < maxRecordBytes else { throw recordTooLong() }
                let grown = min(2 * capacity, max(maxRecordBytes, capacity + 1))
                let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: grown + 1)
                bigger.update(from: buffer, count: filled)
                buffer.deallocate()
                buffer = bigger
                capacity = grown
            }
            let got = try source.readSome(into: UnsafeMutableRawBufferPointer(start: buffer + filled, count: capacity - filled))
            if got == 0 { eof = true } else {
                if bytesRead == 0, let nul = memchr(buffer + filled, 0, got) {
                    let offset = buffer.distance(to: nul.assumingMemoryBound(to: UInt8.self)) - filled
                    throw DataError.malformed(
                        file: name, location: "byte \(offset)",
                        message: "a NUL byte: this is a binary file, not text (expected UTF-8 text, one record a line)")
                }
                filled += got
                bytesRead += got
            }
        }
    }

    /// The record starting at line `nextLine` has reached `maxRecordBytes` with no end in sight.
    private func recordTooLong() -> DataError {
        let limit = MemoryBudget.format(maxRecordBytes)
        if quoting && state == 2 {
            return .malformed(
                file: name, location: "line \(nextLine)",
                message: "a quoted field opened on this line is still open after \(limit); expected a closing '\"'")
        }
        return .malformed(
            file: name, location: "line \(nextLine)",
            message: "the line is longer than \(limit) (no newline); is this a text file of records?")
    }

    private func scanForEnd() -> Int? {
        let newline = UInt8(ascii: "\n")
        if !quoting {
            guard scan < filled else { return nil }
            if let hit = memchr(buffer + scan, Int32(newline), filled - scan) {
                let end = buffer.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                scan = end
                return end
            }
            scan = filled
            return nil
        }
        let quote = UInt8(ascii: "\"")
        // Outside quotes, a line without a quote ends at its newline whatever else it holds: two
        // memchr calls instead of a byte at a time through the state machine below.
        if state != 2, scan < filled, let hit = memchr(buffer + scan, Int32(newline), filled - scan) {
            let end = buffer.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            if memchr(buffer + scan, Int32(quote), end - scan) == nil {
                scan = end
                return end
            }
        }
        while scan < filled {
            let b = buffer[scan]
            if b == newline {
                if state == 2 { newlinesInside += 1 } else { return scan }
            } else if b == quote {
                state = state == 0 ? 2 : state == 2 ? 3 : state == 3 ? 2 : 1
            } else if isDelimiter(b) {
                if state != 2 { state = 0 }
            } else if b != 0x20 && b != 0x09 && b != 0x0D {
                if state != 2 { state = 1 }
            } else if state == 3 {
                state = 1
            }
            scan += 1
        }
        return nil
    }

    @inline(__always)
    private func isDelimiter(_ b: UInt8) -> Bool {
        if let delimiter { return b == delimiter }
        return b == UInt8(ascii: ",") || b == UInt8(ascii: "\t") || b == UInt8(ascii: ";")
    }
}

/// Makes `strtod` read '.' as the decimal point on this thread whatever the process locale is,
/// for the duration of one read.
struct NumericLocaleScope {
    nonisolated(unsafe) private static let cLocale: locale_t? = newlocale(Int32(LC_NUMERIC_MASK), "C", nil)
    private let previous: locale_t?

    init() {
        previous = Self.cLocale.map { uselocale($0) }
    }

    func end() {
        if let previous { uselocale(previous) }
    }
}

/// Decimal numbers straight from bytes: `[+-]digits[.digits][(e|E)[+-]digits]`, surrounding spaces
/// allowed. Up to 2⁵³ in the significand and 10^±22 in scale the result is computed exactly
/// (one correctly rounded operation, Clinger's fast path); longer numbers go to `strtod`. Hex floats
/// and other spellings are not numbers; `nan`, `inf` and `infinity` (any case, signed) are
/// recognised as non-finite so that they can be refused by name.
enum DecimalParser {
    enum Outcome: Equatable {
        case value(Double)
        case nonFinite
        case notANumber
    }

    static let powersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    static func isNumberLike(_ text: String) -> Bool {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { parse(UnsafeBufferPointer($0)) != .notANumber }
    }

    static func parse(_ text: String) -> Outcome {
        Array(text.utf8).withUnsafeBufferPointer { parse($0) }
    }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Outcome {
        guard let p = bytes.baseAddress else { return .notANumber }
        var lo = 0, hi = bytes.count
        while lo < hi && isSpace(p[lo]) { lo += 1 }
        while hi > lo && isSpace(p[hi - 1]) { hi -= 1 }
        guard lo < hi else { return .notANumber }
        let (value, end) = prefix(p, from: lo, to: hi)
        guard let value else {
            let sign = p[lo] == UInt8(ascii: "+") || p[lo] == UInt8(ascii: "-") ? 1 : 0
            return special(p + lo + sign, hi - lo - sign)
        }
        guard end == hi else { return .notANumber }
        return value.isFinite ? .value(value) : .nonFinite
    }

    /// The number that starts at `p[lo]` and where it ends: the first byte of `p[lo..<hi]` that
    /// cannot continue it. `nil` when no number starts there (no digit, or an exponent without
    /// digits). An overflow is infinite, for the caller to refuse.
    ///
    /// This is the inner loop of every text reader, so it works on a bare pointer: one pass, no
    /// copy except the rare `strtod` fallback's.
    @inline(__always)
    static func prefix(_ p: UnsafePointer<UInt8>, from lo: Int, to hi: Int) -> (Double?, end: Int) {
        var i = lo
        var negative = false
        if i < hi && (p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-")) {
            negative = p[i] == UInt8(ascii: "-")
            i += 1
        }
        // Every digit goes into `mantissa`; past 19 of them it may have wrapped, which the
        // significant-digit count below catches before the value is used.
        var mantissa: UInt64 = 0
        let digitsStart = i
        while i < hi, case let d = p[i] &- UInt8(ascii: "0"), d < 10 {
            mantissa = mantissa &* 10 &+ UInt64(d)
            i += 1
        }
        var digits = i - digitsStart
        var exponent = 0
        if i < hi && p[i] == UInt8(ascii: ".") {
            i += 1
            let fractionStart = i
            while i + 8 <= hi, let eight = eightDigits(p + i) {
                mantissa = mantissa &* 100_000_000 &+ eight
                i += 8
            }
            while i < hi, case let d = p[i] &- UInt8(ascii: "0"), d < 10 {
                mantissa = mantissa &* 10 &+ UInt64(d)
                i += 1
            }
            exponent = fractionStart - i
            digits += i - fractionStart
        }
        guard digits > 0 else { return (nil, i) }   // no digit: "", ".", "-", "e5"
        let digitsEnd = i
        if i < hi && (p[i] | 0x20) == UInt8(ascii: "e") {
            i += 1
            var exponentNegative = false
            if i < hi && (p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-")) {
                exponentNegative = p[i] == UInt8(ascii: "-")
                i += 1
            }
            var e = 0
            let exponentStart = i
            while i < hi, case let d = p[i] &- UInt8(ascii: "0"), d < 10 {
                if e < 100_000 { e = e * 10 + Int(d) }
                i += 1
            }
            guard i > exponentStart else { return (nil, i) }
            exponent += exponentNegative ? -e : e
        }
        if digits > 19 {
            // Leading zeros (and the point) are not significant; more than 19 digits that are go to strtod.
            var k = digitsStart
            while k < digitsEnd && (p[k] == UInt8(ascii: "0") || p[k] == UInt8(ascii: ".")) { k += 1 }
            var significant = 0
            for j in k..<digitsEnd where p[j] != UInt8(ascii: ".") { significant += 1 }
            if significant > 19 { return (viaStrtod(p, from: lo, to: i), i) }
        }
        if mantissa == 0 { return (negative ? -0.0 : 0.0, i) }
        if mantissa <= 1 << 53 && exponent >= -22 && exponent <= 22 {
            // Clinger's fast path: both operands exact, so the one operation rounds correctly.
            var v = Double(mantissa)
            v = exponent < 0 ? v / powerOfTen(-exponent) : v * powerOfTen(exponent)
            return (negative ? -v : v, i)
        }
        return (viaStrtod(p, from: lo, to: i), i)
    }

    /// Eight ASCII digits as their value (SWAR, as in Lemire's fast_float), or nil when one of the
    /// eight bytes is not a digit: a fraction such as `%.10g` prints takes one step, not eight.
    @inline(__always)
    private static func eightDigits(_ p: UnsafePointer<UInt8>) -> UInt64? {
        var v = UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt64.self))
        guard ((v &+ 0x4646_4646_4646_4646) | (v &- 0x3030_3030_3030_3030)) & 0x8080_8080_8080_8080 == 0 else { return nil }
        v &-= 0x3030_3030_3030_3030
        v = v &* 10 &+ (v >> 8)   // each pair of bytes: ten times the first digit plus the second
        let pairs: UInt64 = 0x0000_00FF_0000_00FF
        return ((v & pairs) &* (100 + (1_000_000 << 32)) &+ ((v >> 16) & pairs) &* (1 + (10_000 << 32))) >> 32
    }

    /// The slow path: correctly rounded by the C library (its grammar includes ours).
    private static func viaStrtod(_ p: UnsafePointer<UInt8>, from lo: Int, to end: Int) -> Double {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: end - lo + 1) { tmp -> Double in
            guard let t = tmp.baseAddress else { return .nan }
            UnsafeMutableRawPointer(t).copyMemory(from: p + lo, byteCount: end - lo)
            t[end - lo] = 0
            return strtod(t, nil)
        }
    }

    /// 10^k for 0 ≤ k ≤ 22, the powers a double holds exactly.
    @inline(__always)
    private static func powerOfTen(_ k: Int) -> Double {
        powersOfTen.withUnsafeBufferPointer { $0[k] }
    }

    @inline(__always)
    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D }

    /// `nan`, `inf`, `infinity` in any case (after the sign) are non-finite; anything else is not a number.
    private static func special(_ p: UnsafePointer<UInt8>, _ count: Int) -> Outcome {
        guard count <= 8 else { return .notANumber }
        var word = ""
        for k in 0..<count { word.unicodeScalars.append(UnicodeScalar(p[k] | 0x20)) }
        return ["nan", "inf", "infinity"].contains(word) ? .nonFinite : .notANumber
    }
}
