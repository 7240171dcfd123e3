import ArgumentParser

// Placeholder: replaced by the backend that provides this command in the same change set.
struct LaunchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "launch", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("'launch' is not available in this build yet") }
}
