// Running the real `git` from tests (isolated from the user's configuration) and scratch directories for its repositories.

import Foundation

/// Runs the real git in `directory` with an isolated configuration; returns stdout (trimmed).
@discardableResult
public func git(_ arguments: [String], in directory: URL, input: [UInt8]? = nil,
                environment extra: [String: String] = [:]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["git"] + arguments
    process.currentDirectoryURL = directory
    var environment = ProcessInfo.processInfo.environment
    environment["GIT_CONFIG_GLOBAL"] = "/dev/null"
    environment["GIT_CONFIG_NOSYSTEM"] = "1"
    for (key, value) in extra { environment[key] = value }
    process.environment = environment
    let stdout = Pipe()
    let stderr = Pipe()
    let stdin = Pipe()
    process.standardOutput = stdout
    process.standardError = stderr
    process.standardInput = stdin
    try process.run()
    // Standard error is read on another thread so that neither pipe can fill up and block git;
    // a write to a git that exited early throws (EPIPE) instead of trapping like `write(_:)`.
    let errors = Captured()
    let errorsRead = DispatchGroup()
    errorsRead.enter()
    DispatchQueue.global().async {
        errors.data = stderr.fileHandleForReading.readDataToEndOfFile()
        errorsRead.leave()
    }
    var writeFailure: (any Error)? = nil
    if let input {
        do { try stdin.fileHandleForWriting.write(contentsOf: Data(input)) } catch { writeFailure = error }
    }
    try? stdin.fileHandleForWriting.close()
    let data = stdout.fileHandleForReading.readDataToEndOfFile()
    errorsRead.wait()
    process.waitUntilExit()
    guard process.terminationStatus == 0, writeFailure == nil else {
        let message = String(decoding: errors.data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        throw NSError(domain: "git", code: Int(process.terminationStatus),
                      userInfo: [NSLocalizedDescriptionKey: "git \(arguments) failed (exit \(process.terminationStatus)"
                                  + "\(writeFailure.map { ", writing its input: \($0)" } ?? "")): \(message)"])
    }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Bytes read on another thread; the DispatchGroup orders the write before the read.
private final class Captured: @unchecked Sendable {
    var data = Data()
}

/// A new empty directory under the temporary directory, its name starting with `xs-core-<tag>`.
public func makeTempDir(_ tag: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("xs-core-\(tag)-\(ProcessInfo.processInfo.processIdentifier)-\(UInt64.random(in: 0...UInt64.max))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
