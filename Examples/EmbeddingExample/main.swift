// Training from a Swift program: the example the README shows. `swift build` compiles it, so CI
// keeps it honest; `swift run EmbeddingExample` runs it.
import Shardwise
import ShardwiseThreads

// 1. Describe the job: data, strategy, nodes, codec, stopping rule. A Job is plain Codable data.
var job = Job(data: .synthetic(SyntheticSpec(rows: 20_000, features: 50, noise: 0.1, condition: 5, seed: 1)))
job.nodes = 4
job.strategy.kind = .allReduce
job.strategy.allReduce = .ring
job.codec = .float32
job.stopping = StoppingRule(maxIterations: 2000, tolerance: 1e-8)

// 2. Run it on a backend. Threads share this process; the same job runs unchanged on sockets,
//    the simulator or MPI.
let report = try await ThreadsBackend().run(job)

// 3. Read the answer and what it cost.
print("stopped: \(report.stopReason.rawValue) after \(report.iterations) iterations in \(report.seconds) s")
print("|w − w*| / |w*| = \(report.relativeDistance ?? .nan)   (w* by LAPACK)")
print("bytes sent: \(report.totalBytesSent) in \(report.totalMessages) messages")
for node in report.perNode {
    print("rank \(node.rank): compute \(node.computeSeconds) s, communication \(node.communicationSeconds) s, waiting \(node.waitingSeconds) s")
}

// Lower level: the kernel and the exact solution on your own arrays.
let x = Matrix<Double>(rows: 4, columns: 2, elements: [1, 0, 0, 1, 1, 1, 2, 1])
let y: [Double] = [1, 2, 3, 4]
let exact = try LeastSquares.solve(x: x.view, y: y[...])
var gradient = [Double](repeating: 0, count: 2)
let evaluation = GradientKernel(x: x.view, y: y[...]).gradientSum(w: exact.w, into: &gradient)
print("w* = \(exact.w), residual \(exact.residualNorm), gradient sum at w* = \(gradient), ½|r|² = \(evaluation.lossSum)")
