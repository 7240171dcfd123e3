import ArgumentParser
import Shardwise

/// `--timeline FILE`: the run's timeline as Chrome trace-event JSON (train, launch, and rank 0 of
/// `node`). The sampling is the job's (`--timeline-every N`, `timelineEvery` in a job file).
struct TimelineOutput: ParsableArguments {
    @Option(help: ArgumentHelp("Write a timeline here: Chrome trace-event JSON (open it in Perfetto or chrome://tracing).", valueName: "file"))
    var timeline: String?

    func check() throws { try OutputFile.check(path: timeline, option: "--timeline") }

    /// A timeline asked for records one iteration in `timelineEvery`, every iteration unless told.
    func apply(to job: inout Job) {
        if timeline != nil && job.timelineEvery == 0 { job.timelineEvery = 1 }
    }

    /// Writes the report's timeline, and takes it out of the report (its own file holds it).
    /// Without `--timeline` the report keeps it (rank 0 of `node` hands it to `launch` that way).
    func write(_ report: inout TrainingReport) throws {
        guard let timeline else { return }
        defer { report.timeline = nil }
        guard let events = report.timeline else {
            printError("--timeline \(timeline): the run recorded no timeline (timelineEvery is 0)")
            return
        }
        try writeJSON(TimelineFile(events: events), to: timeline, option: "--timeline")
        print("timeline: \(timeline) (\(events.count) events)")
    }
}
