import ArgumentParser

// Placeholder: replaced by the backend that provides this command in the same change set.
struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "simulate", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("'simulate' is not available in this build yet") }
}
