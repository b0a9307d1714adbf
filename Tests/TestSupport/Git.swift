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
    let stdin = Pipe()
    process.standardOutput = stdout
    process.standardError = FileHandle.nullDevice
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input)) }
    try stdin.fileHandleForWriting.close()
    let data = stdout.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw NSError(domain: "git", code: Int(process.terminationStatus),
                      userInfo: [NSLocalizedDescriptionKey: "git \(arguments) failed"])
    }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A new empty directory under the temporary directory, its name starting with `xs-core-<tag>`.
public func makeTempDir(_ tag: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("xs-core-\(tag)-\(ProcessInfo.processInfo.processIdentifier)-\(UInt64.random(in: 0...UInt64.max))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
