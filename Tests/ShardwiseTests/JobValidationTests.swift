import Foundation
import Shardwise
import Testing
import _TestSupport

/// The job's rules, held once in the core: a job file breaking one is refused with the JSON field
/// named; the command line names the flag instead (checked through the built binary).
@Suite("Job validation")
struct JobValidationTests {
    /// A job file's text around `extra` members (a small synthetic problem unless `data` is given).
    static func json(_ extra: String, data: String = #""data":{"synthetic":{"_0":{"rows":100,"features":3}}}"#) -> Data {
        Data("{\(data)\(extra.isEmpty ? "" : ",")\(extra)}".utf8)
    }

    /// Decodes and validates; the error, if any.
    static func error(of text: Data) -> JobError? {
        do {
            let job = try Job(json: text)
            try job.validate()
            return nil
        } catch let error as JobError {
            return error
        } catch {
            Issue.record("not a JobError: \(type(of: error)) \(error)")
            return nil
        }
    }

    // MARK: - Job files: the field is named

    static let badFiles: [(json: String, field: String, says: String)] = [
        (#""codec":{"int8":{"chunk":0}}"#, "codec.int8.chunk", "got 0"),
        (#""codec":{"int8":{"chunk":-5}}"#, "codec.int8.chunk", "got -5"),
        (#""codec":{"int8":{"chunk":9223372036854775807}}"#, "codec.int8.chunk", "1…"),
        (#""codec":{"topK":{"fraction":0}}"#, "codec.topK.fraction", "(0, 1]"),
        (#""codec":{"topK":{"fraction":-0.5}}"#, "codec.topK.fraction", "(0, 1]"),
        (#""codec":{"topK":{"fraction":2}}"#, "codec.topK.fraction", "(0, 1]"),
        (#""partitioning":{"skewed":{"ratio":-2}}"#, "partitioning.skewed.ratio", "got -2"),
        (#""partitioning":{"skewed":{"ratio":0}}"#, "partitioning.skewed.ratio", "got 0"),
        (#""optimizer":{"learningRate":{"fixed":{"_0":0}}}"#, "optimizer.learningRate.fixed._0", "positive"),
        (#""optimizer":{"learningRate":{"fixed":{"_0":-1}}}"#, "optimizer.learningRate.fixed._0", "positive"),
        (#""optimizer":{"momentum":1}"#, "optimizer.momentum", "[0, 1)"),
        (#""optimizer":{"batchSize":0}"#, "optimizer.batchSize", "at least 1"),
        (#""objective":{"ridge":{"lambda":-1}}"#, "objective.ridge.lambda", "≥ 0"),
        (#""objective":{"logistic":{"lambda":-0.5}}"#, "objective.logistic.lambda", "≥ 0"),
        (#""stopping":{"maxIterations":0}"#, "stopping.maxIterations", "at least 1"),
        (#""stopping":{"tolerance":-1}"#, "stopping.tolerance", "≥ 0"),
        (#""nodes":0"#, "nodes", "got 0"),
        (#""nodes":-3"#, "nodes", "got -3"),
        (#""nodes":101"#, "nodes", "more than its 100 rows"),
        (#""nodes":4,"strategy":{"kind":"gossip","gossip":{"topology":{"randomRegular":{"degree":9223372036854775807,"seed":1}}}}"#,
         "strategy.gossip.topology", "k < m"),
        (#""nodes":1000000,"strategy":{"kind":"gossip","gossip":{"topology":{"complete":{}}}}"#, "nodes", "more than its 100 rows"),
        (#""nodes":1e30"#, "nodes", "does not fit"),
        (#""seed":-1"#, "seed", "does not fit"),
        (#""strategy":{"parameterServer":{"staleness":1.5}}"#, "strategy.parameterServer.staleness", "does not fit"),
        (#""computeReference":true,"nodes":99999999999999999999"#, "nodes", "does not fit"),
        (#""codec":{"int9":{}}"#, "codec", "one known case"),
        (#""timeout":0"#, "timeout", "positive"),
        (#""timeout":1e300"#, "timeout", "a year"),
        (#""traceEvery":-1"#, "traceEvery", "≥ 0"),
        (#""strategy":{"parameterServer":{"staleness":-1}}"#, "strategy.parameterServer.staleness", "got -1"),
        (#""strategy":{"kind":"gossip","gossip":{"topology":{"randomRegular":{"degree":0,"seed":1}}}}"#,
         "strategy.gossip.topology.randomRegular.degree", "disconnected"),
        (#""strategy":{"kind":"gossip","gossip":{"topology":{"edges":{"_0":[[0,0]]}}}}"#, "strategy.gossip.topology.edges._0", "self-loop"),
        (#""strategy":{"kind":"gossip","gossip":{"topology":{"edges":{"_0":[[-1,2]]}}}}"#, "strategy.gossip.topology.edges._0", "two ranks"),
        (#""strategy":{"kind":"gossip","gossip":{"topology":{"torus":{"rows":0}}}}"#, "strategy.gossip.topology.torus.rows", "at least 1"),
        (#""nodes":4,"strategy":{"kind":"gossip","gossip":{"topology":{"torus":{"rows":3}}}}"#, "strategy.gossip.topology", "grid"),
        (#""strategy":{"kind":"gossip","gossip":{"asynchronous":true,"gradientTracking":true}}"#, "strategy.gossip.gradientTracking", "synchronous"),
        // Unknown fields, anywhere.
        (#""strategy":{"stalness":3}"#, "strategy.stalness", "unknown field 'strategy.stalness'"),
        (#""nodez":2"#, "nodez", "unknown field 'nodez'"),
        (#""codec":{"int8":{"chunk":4,"chunck":8}}"#, "codec.int8.chunck", "unknown field"),
    ]

    @Test("a bad job file is refused, naming the JSON field", arguments: badFiles)
    func badFile(json: String, field: String, says: String) throws {
        let error = try #require(Self.error(of: Self.json(json)), "accepted: \(json)")
        #expect(error.field == field, "\(error)")
        #expect("\(error)".contains(says), "\(error)")
    }

    static let badSynthetic: [(spec: String, field: String, says: String)] = [
        (#""rows":0,"features":3"#, "data.synthetic._0.rows", "at least 1"),
        (#""rows":-5,"features":3"#, "data.synthetic._0.rows", "got -5"),
        (#""rows":10,"features":0"#, "data.synthetic._0.features", "at least 1"),
        (#""rows":10,"features":3,"condition":1e300"#, "data.synthetic._0.condition", "1e+300"),
        (#""rows":10,"features":3,"condition":0.5"#, "data.synthetic._0.condition", "cond must be in 1…"),
        (#""rows":10,"features":3,"noise":-1"#, "data.synthetic._0.noise", "noise must be in 0…"),
        (#""rows":10,"features":3,"noise":1e200"#, "data.synthetic._0.noise", "noise must be in 0…"),
        (#""rows":3000000000,"features":100000"#, "data.synthetic._0", "this machine has"),
        (#""rows":9223372036854775807,"features":9223372036854775807"#, "data.synthetic._0", "more memory than can be addressed"),
        (#""rows":10,"features":3,"colour":1"#, "data.synthetic._0.colour", "unknown field"),
    ]

    @Test("a bad synthetic spec in a job file names its field", arguments: badSynthetic)
    func badSyntheticFile(spec: String, field: String, says: String) throws {
        let text = Self.json("", data: #""data":{"synthetic":{"_0":{"# + spec + "}}}")
        let error = try #require(Self.error(of: text), "accepted: \(spec)")
        #expect(error.field == field, "\(error)")
        #expect("\(error)".contains(says), "\(error)")
    }

    @Test("a job file that is not a job says so")
    func notAJob() {
        for text in ["", "[1,2]", "{\"data\":", "{}"] {
            #expect(Self.error(of: Data(text.utf8)) != nil, "accepted: \(text)")
        }
        #expect(Self.error(of: Data("{}".utf8))?.field == "data")
    }

    @Test("a valid job file, every default written out, is accepted and reads back the same")
    func roundTrip() throws {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 100, features: 3)))
        job.strategy = StrategySpec(kind: .gossip); job.strategy.gossip.topology = .edges([[0, 1], [1, 2]])
        job.nodes = 3
        job.codec = .int8(chunk: 16)
        job.partitioning = .skewed(ratio: 2)
        job.objective = .ridge(lambda: 0.1)
        job.optimizer.learningRate = .fixed(0.1)
        let decoded = try Job(json: try JSONEncoder().encode(job))
        #expect(decoded == job)
        try decoded.validate()
        // null stands for "absent" (the default) anywhere.
        #expect(Self.error(of: Self.json(#""strategy":{"parameterServer":{"staleness":null}}"#)) == nil)
    }

    // MARK: - Spec text: the same rules, reached through the parsers

    static let badText: [(what: String, text: String, says: String)] = [
        ("topology", "edges:0--1", "'0--1' is not an edge"),
        ("topology", "edges:-1-2", "is not an edge"),
        ("topology", "edges:0-0", "self-loop"),
        ("topology", "random:0", "at least 1"),
        ("synthetic", "n=10,d=2,intercept=2", "intercept=2"),
        ("synthetic", "n=1,n=2,d=3", "'n' is given twice"),
        ("synthetic", "n=1,rows=2,d=3", "same key"),
        ("synthetic", "n=100,d=3,cond=1e300", "cond must be in 1…"),
        ("synthetic", "n=100,d=3,noise=nan", "noise must be"),
        ("partition", "skewed:-2", "1…"),
        ("partition", "skewed:0", "1…"),
        ("codec", "int8:0", "got 0"),
        ("codec", "int8:-5", "got -5"),
        ("codec", "topk:0", "(0, 1]"),
        ("lr", "0", "positive"),
        ("lr", "nan", "positive"),
    ]

    @Test("spec text is refused by the same rules", arguments: badText)
    func badSpecText(what: String, text: String, says: String) {
        do {
            switch what {
            case "topology": _ = try TopologySpec(parsing: text)
            case "synthetic": _ = try SyntheticSpec(parsing: text)
            case "partition": _ = try Partitioning(parsing: text)
            case "codec": _ = try CodecSpec(parsing: text)
            default: _ = try LearningRate(parsing: text)
            }
            Issue.record("accepted \(what) '\(text)'")
        } catch {
            #expect(error is JobError, "\(type(of: error))")
            #expect("\(error)".contains(says), "\(error)")
        }
    }

    @Test("λ: refused when negative or NaN, and least squares takes none")
    func lambda() {
        #expect(throws: JobError.self) { try Objective(name: "ridge", lambda: -1) }
        #expect(throws: JobError.self) { try Objective(name: "logistic", lambda: .nan) }
        do { _ = try Objective(name: "least-squares", lambda: 0.1); Issue.record("accepted") } catch {
            #expect("\(error)".contains("ridge"))
        }
        #expect((try? Objective(name: "least-squares", lambda: 0)) == .leastSquares)
    }

    // MARK: - Warnings: harmless but surprising

    static let surprising: [(json: String, field: String, says: String)] = [
        (#""strategy":{"kind":"mapreduce","parameterServer":{"staleness":2}}"#, "strategy.parameterServer.staleness", "applies to ps only"),
        (#""strategy":{"kind":"allreduce","gossip":{"asynchronous":true}}"#, "strategy.gossip.asynchronous", "gossip only"),
        (#""nodes":4,"strategy":{"kind":"gossip","gossip":{"topology":{"disconnected":{}}}}"#, "strategy.gossip.topology", "cannot converge"),
        (#""nodes":4,"strategy":{"kind":"gossip","gossip":{"topology":{"edges":{"_0":[[0,1]]}}}}"#, "strategy.gossip.topology", "3 parts"),
    ]

    @Test("a surprising setting is warned about, not refused", arguments: surprising)
    func warned(json: String, field: String, says: String) throws {
        let job = try Job(json: Self.json(json))
        try job.validate()
        let warning = try #require(job.warnings.first, "no warning for \(json)")
        #expect(warning.field == field)
        #expect(warning.message.contains(says), "\(warning)")
        #expect(Job(data: job.data).warnings.isEmpty)
    }

    /// Fields that sat flat in `strategy` before each strategy had its own options: an old job
    /// file is refused (never silently ignored) with the field's new place.
    @Test("a moved field is refused with its new place", arguments: [
        ("staleness", "2", "strategy.parameterServer.staleness"),
        ("topology", #"{"complete":{}}"#, "strategy.gossip.topology"),
        ("asynchronous", "true", "strategy.gossip.asynchronous"),
        ("gradientTracking", "true", "strategy.gossip.gradientTracking"),
    ])
    func movedField(key: String, value: String, now: String) throws {
        let error = try #require(Self.error(of: Self.json(#""strategy":{"\#(key)":\#(value)}"#)))
        #expect(error == .unknownField("strategy.\(key)"))
        #expect(error.message.contains("moved to '\(now)'"), "\(error)")
    }

    @Test("every options value a strategy or solver does not read is warned about, field by field")
    func ignoredOptionsAreWarned() throws {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 50, features: 2)))
        job.strategy.kind = .allReduce
        job.strategy.parameterServer.update = .each
        job.strategy.gossip.gradientTracking = true
        job.strategy.cocoa.localPasses = 3
        job.optimizer.solver = .cg
        job.optimizer.lbfgs.memory = 5
        #expect(job.warnings.map(\.field) == ["strategy.parameterServer.update", "strategy.gossip.gradientTracking",
                                               "strategy.cocoa.localPasses", "optimizer.lbfgs.memory"])
        #expect(job.warnings.allSatisfy { $0.message.contains("only; ") })
        job.strategy.kind = .parameterServer
        job.optimizer.solver = nil
        #expect(!job.warnings.contains { $0.field.hasPrefix("strategy.parameterServer") })
    }

    @Test("warnings reach the report as notes")
    func warningInReport() throws {
        var job = Job(data: .synthetic(SyntheticSpec(rows: 50, features: 2)))
        job.strategy.parameterServer.staleness = 3
        job.computeReference = false
        let problem = try PreparedProblem<Double>(job: job)
        let report = problem.report(outcomes: [NodeOutcome(rank: 0, role: "single", model: [0, 0], iterations: 0, stopReason: nil,
                                                           learningRate: 1, recorder: Recorder(rank: 0, traceEvery: 1), rows: 50)],
                                    backend: "test", seconds: 0)
        #expect(report.notes.contains { $0.contains("strategy.parameterServer.staleness") })
    }

    // MARK: - Blame: data problems are not step-size problems

    @Test("NaN or ∞ in the data is refused before training, naming row and column")
    func nonFiniteData() {
        var x = Matrix<Double>(rows: 3, columns: 2)
        x[1, 1] = .nan
        let data = Dataset(x: x, y: [1, 2, 3], featureNames: ["a", "b"], source: "mem")
        do { _ = try PreparedProblem(job: Job(data: .synthetic(SyntheticSpec(rows: 3, features: 2))), dataset: data); Issue.record("accepted") }
        catch {
            #expect("\(error)".contains("row 1") && "\(error)".contains("'b'"), "\(error)")
            #expect(!"\(error)".contains("--lr"))
        }
    }

    @Test("the first NaN or ∞ is found in float32 and float64 alike, the target before X")
    func nonFiniteInEitherPrecision() {
        func check<S: BLASScalar>(_: S.Type) {
            var x = Matrix<S>(rows: 3, columns: 2)
            #expect(throws: Never.self) { try Dataset(x: x, y: [1, 2, 3], source: "mem").checkFinite() }
            x[2, 0] = .infinity
            #expect(throws: DataError.nonFinite(file: "mem", location: "row 2 (0-based), column 'a' (inf in \(S.precisionName))")) {
                try Dataset(x: x, y: [1, 2, 3], featureNames: ["a", "b"], source: "mem").checkFinite()
            }
            #expect(throws: DataError.nonFinite(file: "mem", location: "row 1 (0-based), the target (nan in \(S.precisionName))")) {
                try Dataset(x: x, y: [1, .nan, 3], source: "mem").checkFinite()
            }
        }
        check(Double.self)
        check(Float.self)
    }

    @Test("values whose squares overflow are blamed on the data, not on the step")
    func overflowingData() {
        let x = Matrix<Float>(rows: 2, columns: 1, elements: [1e20, 2e20])
        let data = Dataset(x: x, y: [1e20, 1e20], source: "mem")
        var job = Job(data: .synthetic(SyntheticSpec(rows: 2, features: 1)))
        job.precision = .float32
        job.computeReference = false
        do { _ = try PreparedProblem(job: job, dataset: data); Issue.record("accepted") }
        catch {
            #expect("\(error)".contains("too large") && "\(error)".contains("not the cause"), "\(error)")
        }
    }

    @Test("a divergence names the step size only when the step is to blame")
    func divergenceBlame() {
        let atStart = DivergenceError(iteration: 0, learningRate: 0.5, gradientNorm: .nan)
        #expect(atStart.cause == .notFiniteAtStart)
        #expect(!atStart.description.contains("--lr") && atStart.description.contains("not the cause"))
        let later = DivergenceError(iteration: 7, learningRate: 0.5, gradientNorm: .infinity)
        #expect(later.cause == .notFinite && later.description.contains("--lr"))
        let growing = DivergenceError(iteration: 7, learningRate: 0.5, gradientNorm: 1e12)
        #expect(growing.cause == .growing && growing.description.contains("grew"))
    }

    @Test("the logistic reference's advice names a flag that exists (--lambda)")
    func logisticAdvice() {
        // Separable classes: no finite optimum without an ℓ2 term.
        let x = Matrix<Double>(rows: 4, columns: 1, elements: [1, 2, -1, -2])
        do { _ = try LeastSquares.solveLogistic(x: x.view, y: [1, 1, 0, 0][...], ridge: 0); Issue.record("converged") }
        catch {
            #expect("\(error)".contains("--lambda") && !"\(error)".contains("--ridge"), "\(error)")
        }
    }

    @Test("generating a synthetic dataset checks the memory first")
    func generateChecksMemory() {
        #expect(throws: JobError.self) { let _: Dataset<Double> = try SyntheticSpec(rows: 3_000_000_000, features: 100_000).generate() }
    }
}

/// The same rules through the built `shardwise`: an error names the flag that set the value, or
/// the job file and the field when the file did.
@Suite("Job validation on the command line", .spawnsProcesses)
struct CommandLineValidationTests {
    /// Runs `shardwise train …` on a tiny problem unless the arguments give one; exit status and stderr.
    static func train(_ arguments: [String]) async throws -> (status: Int32, stderr: String) {
        let givesData = arguments.contains { $0.hasPrefix("--synthetic") || $0 == "--job" || $0 == "--data" }
        let run = try await ShardwiseBinary.run(["train", "--quiet"] + (givesData ? [] : ["--synthetic", "n=60,d=3"]) + arguments,
                                                environment: ["SHARDWISE_MEMORY_LIMIT": "24GiB"])
        return (run.status, run.stderr)
    }

    static let refused: [(arguments: [String], says: String)] = [
        (["--codec", "int8:0"], "--codec int8:0: the int8 chunk must be in 1…"),
        (["--codec", "int8:-5"], "--codec int8:-5:"),
        (["--codec", "topk:0"], "--codec topk:0:"),
        (["--partition", "skewed:-2"], "--partition skewed:-2: the skew ratio"),
        (["--partition", "skewed:0"], "--partition skewed:0:"),
        (["--lr", "0"], "--lr 0: the step size must be a positive number"),
        (["--lambda=-1", "--objective", "ridge"], "--lambda -1.0: λ must be a finite number ≥ 0"),
        (["--lambda", "0.1"], "--lambda 0.1: least-squares has no ℓ2 term"),
        (["--nodes", "0"], "--nodes 0: the node count"),
        (["--iterations", "0"], "--iterations 0:"),
        (["--momentum", "1"], "--momentum 1.0:"),
        (["--tolerance", "nan"], "--tolerance nan:"),
        (["--timeout", "1e300"], "--timeout 1e+300:"),
        (["--trace-every=-1"], "--trace-every -1: the trace interval must be ≥ 0"),
        (["--staleness=-1", "--strategy", "ps"], "--staleness -1:"),
        (["--synthetic", "n=100000,d=100000"], "needs 149 GiB, this machine has 24.0 GiB"),
        (["--synthetic", "n=3000000000,d=2"], "--synthetic n=3000000000,d=2: the synthetic data"),
        (["--synthetic", "n=100,d=3,cond=1e300"], "--synthetic n=100,d=3,cond=1e300: cond must be in 1…"),
        (["--synthetic", "n=1,n=2,d=3"], "'n' is given twice"),
        (["--synthetic", "n=10,d=2,intercept=2"], "intercept=2: expected 1 or 0"),
        (["--strategy", "gossip", "--nodes", "2", "--topology", "edges:0--1"], "--topology edges:0--1: '0--1' is not an edge"),
        (["--strategy", "gossip", "--nodes", "2", "--topology", "edges:0-0"], "--topology edges:0-0: edge 0-0 is a self-loop"),
        (["--strategy", "gossip", "--nodes", "2", "--topology", "random:0"], "--topology random:0: the degree must be at least 1"),
        (["--strategy", "gossip", "--nodes", "4", "--topology", "torus:3"], "--topology torus:3:"),
    ]

    @Test("a bad flag is refused, naming the flag", arguments: refused)
    func badFlag(arguments: [String], says: String) async throws {
        let (status, stderr) = try await Self.train(arguments)
        #expect(status != 0)
        #expect(stderr.contains(says), "\(stderr)")
    }

    /// Writes a job file; its path.
    static func jobFile(_ members: String) throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("shardwise-job-\(UInt64.random(in: 0...UInt64.max)).json").path
        try JobValidationTests.json(members, data: #""data":{"synthetic":{"_0":{"rows":60,"features":3}}}"#)
            .write(to: URL(fileURLWithPath: path))
        return path
    }

    static let refusedFiles: [(json: String, flags: [String], says: String)] = [
        (#""codec":{"int8":{"chunk":0}}"#, [], ": codec.int8.chunk: the int8 chunk must be in 1…"),
        (#""partitioning":{"skewed":{"ratio":-2}}"#, [], ": partitioning.skewed.ratio:"),
        (#""strategy":{"stalness":3}"#, [], ": unknown field 'strategy.stalness'"),
        (#""nodes":1e30"#, [], ": nodes: 1e+30 does not fit"),
        // The file's topology is at fault even though --nodes made it so.
        (#""strategy":{"kind":"gossip","gossip":{"topology":{"torus":{"rows":3}}}}"#, ["--nodes", "4"], ": strategy.gossip.topology:"),
    ]

    @Test("a bad job file is refused, naming the file and the field", arguments: refusedFiles)
    func badJobFile(json: String, flags: [String], says: String) async throws {
        let path = try Self.jobFile(json)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (status, stderr) = try await Self.train(["--job", path] + flags)
        #expect(status != 0)
        #expect(stderr.contains("--job \(path)\(says)"), "\(stderr)")
    }

    @Test("a flag overrides a job file's bad value before the rules apply")
    func flagOverridesFile() async throws {
        let path = try Self.jobFile(#""codec":{"int8":{"chunk":0}}"#)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (status, stderr) = try await Self.train(["--job", path, "--codec", "int8:4", "--iterations", "2", "--no-reference"])
        #expect(status == 0, "\(stderr)")
    }

    static let warned: [(arguments: [String], says: String)] = [
        (["--staleness", "2"], "warning: --staleness 2: this option applies to ps only; mapreduce ignores it"),
        (["--strategy", "gossip", "--nodes", "2", "--topology", "disconnected"], "warning: --topology disconnected: on 2 nodes"),
        (["--strategy", "allreduce", "--async"], "warning: --async: this option applies to gossip only; allreduce ignores it"), (["--ps-update", "each"], "warning: --ps-update each: this option applies to ps only"),
    ]

    @Test("a surprising flag runs, with a warning on stderr", arguments: warned)
    func warning(arguments: [String], says: String) async throws {
        let (status, stderr) = try await Self.train(arguments + ["--iterations", "2", "--no-reference"])
        #expect(status == 0, "\(stderr)")
        #expect(stderr.contains(says), "\(stderr)")
    }
}
