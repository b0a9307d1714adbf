// The errors xsdeploy reports: each says what is wrong and what to do about it.

/// A failure of a deployment step, with a message meant for the operator.
public enum DeployError: Error, CustomStringConvertible, Equatable {
    /// A tool (swiftc, git, make) is missing or failed to start.
    case missingTool(String)
    /// A built image is absent.
    case missingImage(String)
    /// The source tree has uncommitted changes in the image's inputs.
    case dirtySourceTree(String)
    /// The deployment repository is not usable (not a git repository, dirty, no deployments, unknown tag).
    case badRepository(String)
    /// A manifest could not be read or does not match its files.
    case manifest(String)
    /// gzip compression or decompression failed.
    case compression(String)
    /// A generated configuration failed to parse back.
    case config(String)
    /// An external command failed.
    case commandFailed(String)

    /// The operator-facing message.
    public var description: String {
        switch self {
        case .missingTool(let text): return "missing toolchain: \(text)"
        case .missingImage(let text): return "missing image: \(text)"
        case .dirtySourceTree(let text): return "dirty source tree: \(text)"
        case .badRepository(let text): return "bad deployment repository: \(text)"
        case .manifest(let text): return "manifest: \(text)"
        case .compression(let text): return "compression: \(text)"
        case .config(let text): return "config: \(text)"
        case .commandFailed(let text): return "command failed: \(text)"
        }
    }
}
