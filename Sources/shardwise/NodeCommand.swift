import ArgumentParser

// Placeholder: replaced by the backend that provides this command in the same change set.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("'node' is not available in this build yet") }
}
