/// A job that cannot run as given. Every case names the field at fault by its path in the job's
/// JSON (`codec.int8.chunk`, `strategy.gossip.topology`), so a job file's author can find it and the
/// command line can translate it into the flag that set it (`--codec`).
///
/// The rules live once, in the `validate()` of each part of a job (`CodecSpec.validate()`,
/// `Partitioning.validate()`, …) and in `Job.validate()` for the rules that tie parts together;
/// the text parsers (`CodecSpec(parsing:)`, …) check only their syntax and then call the same
/// `validate()`.
public enum JobError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A value outside its range, or settings that contradict each other. `field` is the JSON path
    /// ("" when the error is about a whole spec given as text, before it has a place in a job).
    case invalid(field: String, message: String)
    /// A job file names a field that no job has (a typo: `strategy.stalness`).
    case unknownField(String)
    /// A job file that is not JSON, lacks a required field, or holds a value of the wrong type.
    case malformed(field: String, message: String)

    /// The JSON path of the field at fault ("" for the whole job).
    public var field: String {
        switch self {
        case .invalid(let field, _), .malformed(let field, _): return field
        case .unknownField(let field): return field
        }
    }

    /// The message without the field's name (what the command line puts after a flag).
    public var message: String {
        switch self {
        case .invalid(_, let message), .malformed(_, let message): return message
        case .unknownField(let field):
            if field.hasPrefix("strategy."), let now = StrategySpec.movedFields[String(field.dropFirst("strategy.".count))] {
                return "unknown field '\(field)': it moved to 'strategy.\(now)'"
            }
            return "unknown field '\(field)'"
        }
    }

    public var description: String {
        switch self {
        case .unknownField: return message
        default: return field.isEmpty ? message : "\(field): \(message)"
        }
    }

    /// The same error with its field placed under `parent` (a part's `validate()` names its own
    /// fields; the job puts them where they sit in the file).
    public func within(_ parent: String) -> JobError {
        func join(_ f: String) -> String { f.isEmpty ? parent : parent.isEmpty ? f : "\(parent).\(f)" }
        switch self {
        case .invalid(let f, let m): return .invalid(field: join(f), message: m)
        case .malformed(let f, let m): return .malformed(field: join(f), message: m)
        case .unknownField(let f): return .unknownField(join(f))
        }
    }

    /// Runs `body`, moving any `JobError` it throws under `parent`.
    static func within<T>(_ parent: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as JobError { throw error.within(parent) }
    }
}

/// A setting that is allowed but probably not what was meant (a staleness bound given to a
/// strategy that has none). The CLI prints each on stderr, and the report keeps them as notes.
public struct JobWarning: Sendable, Equatable, CustomStringConvertible {
    /// The JSON path of the field concerned.
    public var field: String
    public var message: String
    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }
    public var description: String { "\(field): \(message)" }
}
