// Runs external programs (git, swiftc, make, xl) and captures their output, with clear errors when absent.
import Foundation

/// The result of one external command.
public struct CommandResult {
    /// Exit status (or the terminating signal number).
    public var status: Int32
    /// Standard output, as UTF-8 text.
    public var stdout: String
    /// Standard error, as UTF-8 text.
    public var stderr: String
}

/// Thin wrapper over Foundation's Process.
public enum Shell {
    /// Finds `name` on PATH (or accepts an absolute/relative path that exists and is executable).
    public static func which(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `arguments[0]` with the rest as arguments; never throws for a non-zero exit, only when it cannot start.
    @discardableResult
    public static func run(_ arguments: [String], in directory: String? = nil,
                           environment: [String: String] = [:]) throws -> CommandResult {
        guard let tool = arguments.first, let executable = which(tool) else {
            throw DeployError.missingTool("`\(arguments.first ?? "")` is not on PATH")
        }
        // Starting a process can fail transiently when the machine is loaded (fork/posix_spawn
        // EAGAIN, seen under parallel tests): try a few times, each with a fresh Process.
        var attempt = 0
        var launched: (Process, Pipe, Pipe)? = nil
        while launched == nil {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = Array(arguments.dropFirst())
            if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
            if !environment.isEmpty {
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
            }
            let outPipe = Pipe(), errPipe = Pipe()
            process.standardOutput = outPipe
            process.standardError = errPipe
            process.standardInput = FileHandle.nullDevice
            do {
                try process.run()
                launched = (process, outPipe, errPipe)
            } catch {
                attempt += 1
                guard attempt < 4 else {
                    throw DeployError.missingTool("cannot start \(executable): \(error.localizedDescription)")
                }
                usleep(useconds_t(100_000 * attempt))
            }
        }
        let (process, outPipe, errPipe) = launched!
        // Read both pipes concurrently so a chatty child cannot block on a full pipe.
        let errBox = DataBox()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errBox.data = errPipe.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let outData = outPipe.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let errData = errBox.data
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus,
                             stdout: String(decoding: outData, as: UTF8.self),
                             stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Runs a command and returns its trimmed stdout, throwing `commandFailed` with stderr on a non-zero exit.
    @discardableResult
    public static func check(_ arguments: [String], in directory: String? = nil,
                             environment: [String: String] = [:]) throws -> String {
        let result = try run(arguments, in: directory, environment: environment)
        guard result.status == 0 else {
            let detail = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            throw DeployError.commandFailed("\(arguments.joined(separator: " ")) (exit \(result.status)): \(detail)")
        }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Holds bytes read on another queue; the DispatchGroup orders the write before the read.
final class DataBox: @unchecked Sendable {
    var data = Data()
}

/// Progress lines on standard error, so stdout stays machine-readable.
public enum Progress {
    /// Set to false to silence progress (tests).
    nonisolated(unsafe) public static var enabled = true

    /// Prints `[step/total] message` to standard error.
    public static func step(_ step: Int, of total: Int, _ message: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("[\(step)/\(total)] \(message)\n".utf8))
    }

    /// Prints an indented detail line to standard error.
    public static func note(_ message: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("      \(message)\n".utf8))
    }
}

/// Small file helpers shared by the subcommands.
public enum Files {
    /// The bytes of a file, or a `missingImage`-style error naming it.
    public static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DeployError.manifest("cannot read \(path)")
        }
        return [UInt8](data)
    }

    /// Writes bytes, creating parent directories.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
    }

    /// Writes UTF-8 text, creating parent directories.
    public static func write(_ text: String, to path: String) throws {
        try write(Array(text.utf8), to: path)
    }

    /// Whether a regular file or directory exists at `path`.
    public static func exists(_ path: String, directory: Bool? = nil) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return false }
        if let directory { return isDirectory.boolValue == directory }
        return true
    }

    /// An absolute, standardized path (relative paths resolve against the current directory).
    public static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }
}
