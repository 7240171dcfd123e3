import Foundation

/// The options of one strategy or one solver (as c10d's `AllreduceOptions`): a small value that
/// lives in the strategy's or solver's own file, has a default for every field, decodes a job
/// file's partial object with those defaults, and checks its own ranges.
///
/// A spec (`StrategySpec`, `OptimizerSpec`) holds one such value per strategy or solver and lists
/// them in its `registry`: the JSON key, the kind that reads the value, and a key path to it. That
/// list is the one registration; decoding, encoding, validation and the "set but ignored" warnings
/// are written once, over it. Adding a strategy is its file (strategy + options), a case of
/// `StrategyKind` with its `makeStrategy` line, one stored property and one registry entry.
public protocol ComponentOptions: Codable, Sendable, Equatable {
    /// Every field at its default.
    init()
    /// Checks the options' own ranges; a field at fault is named relative to the options
    /// (`staleness`), and the spec puts it under the options' key (`strategy.parameterServer.staleness`).
    func validate() throws
}

extension ComponentOptions {
    public func validate() throws {}

    /// The JSON keys of the fields that differ from their defaults, in sorted order.
    func changedFields() -> [String] {
        func tree(_ value: Self) -> [String: NSObject] {
            let encoder = JSONEncoder()
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            guard let data = try? encoder.encode(value),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
            return object.compactMapValues { $0 as? NSObject }
        }
        let mine = tree(self), defaults = tree(Self())
        return Set(mine.keys).union(defaults.keys).filter { mine[$0] != defaults[$0] }.sorted()
    }
}

/// One registered options value of a spec: where it sits in the spec and in the job file, and
/// which kind (strategy or solver) reads it.
struct OptionsEntry<Spec, Owner: Equatable & CustomStringConvertible> {
    let key: String
    let owner: Owner
    let decode: (inout Spec, KeyedDecodingContainer<OptionsCodingKey>) throws -> Void
    let encode: (Spec, inout KeyedEncodingContainer<OptionsCodingKey>) throws -> Void
    let validate: (Spec) throws -> Void
    let changedFields: (Spec) -> [String]

    init<Options: ComponentOptions>(_ key: String, for owner: Owner, _ path: WritableKeyPath<Spec, Options>) {
        self.key = key
        self.owner = owner
        let codingKey = OptionsCodingKey(key)
        decode = { spec, c in
            if let value = try c.decodeIfPresent(Options.self, forKey: codingKey) { spec[keyPath: path] = value }
        }
        encode = { spec, c in try c.encode(spec[keyPath: path], forKey: codingKey) }
        validate = { spec in try JobError.within(key) { try spec[keyPath: path].validate() } }
        changedFields = { spec in spec[keyPath: path].changedFields() }
    }
}

/// A job-file key given by name (the registries' keys and the specs' own fields).
struct OptionsCodingKey: CodingKey {
    let stringValue: String
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}

extension Array {
    /// Decodes every registered options value present in `c` into `spec` (the absent keep their defaults).
    func decode<Spec, Owner>(into spec: inout Spec, from c: KeyedDecodingContainer<OptionsCodingKey>) throws
        where Element == OptionsEntry<Spec, Owner> {
        for entry in self { try entry.decode(&spec, c) }
    }

    func encode<Spec, Owner>(_ spec: Spec, into c: inout KeyedEncodingContainer<OptionsCodingKey>) throws
        where Element == OptionsEntry<Spec, Owner> {
        for entry in self { try entry.encode(spec, &c) }
    }

    func validate<Spec, Owner>(_ spec: Spec) throws where Element == OptionsEntry<Spec, Owner> {
        for entry in self { try entry.validate(spec) }
    }

    /// A warning for every field set away from its default in options that `active` does not read;
    /// `prefix` is the spec's path in the job (`strategy`), `what` names the active kind's role.
    func ignoredWarnings<Spec, Owner>(_ spec: Spec, active: Owner, prefix: String) -> [JobWarning]
        where Element == OptionsEntry<Spec, Owner> {
        var out: [JobWarning] = []
        for entry in self where entry.owner != active {
            for field in entry.changedFields(spec) {
                out.append(JobWarning(field: "\(prefix).\(entry.key).\(field)",
                                      message: "this option applies to \(entry.owner) only; \(active) ignores it"))
            }
        }
        return out
    }
}
