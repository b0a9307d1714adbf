// xsctl: a small command-line client for the daemon — read, write, ls, rm, watch and history.

#if canImport(Glibc)
import Glibc
#endif
import XenstoreHost
import XenstoreWire

let usage = """
Usage: xsctl [--socket PATH] COMMAND [ARGS]

  read PATH...          print each value
  write KEY=VALUE...    write values (creating parents)
  ls [PATH]             list the subtree under PATH (default /) with values
  rm PATH...            remove nodes and their subtrees
  watch PATH [COUNT]    print watch events (COUNT events, default forever)
  history [COUNT]       the newest commits: id, time, summary

The socket defaults to $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket.

"""

func die(_ message: String) -> Never {
    fputs("xsctl: \(message)\n", stderr)
    exit(1)
}

var arguments = Array(CommandLine.arguments.dropFirst())
var socketPath = defaultSocketPath()
if arguments.first == "--socket" {
    guard arguments.count >= 2 else { die("--socket needs a path") }
    socketPath = arguments[1]
    arguments.removeFirst(2)
}
guard let command = arguments.first else {
    print(usage, terminator: "")
    exit(2)
}
let rest = Array(arguments.dropFirst())

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

do {
    let client = try XenstoreClient(path: socketPath)
    switch command {
    case "read":
        for path in rest { print(text(try client.read(path))) }
    case "write":
        for pair in rest {
            guard let equals = pair.firstIndex(of: "=") else { die("write needs KEY=VALUE, got \(pair)") }
            try client.write(String(pair[..<equals]), Array(pair[pair.index(after: equals)...].utf8))
        }
    case "ls":
        let top = rest.first ?? "/"
        var stack: [(String, Int)] = [(top, 0)]
        while let (path, depth) = stack.popLast().map({ ($0.0, $0.1) }) {
            let name = depth == 0 ? path : String(path.split(separator: "/").last ?? "")
            let value = (try? client.read(path)) ?? []
            print(String(repeating: " ", count: depth) + name + " = \"" + text(value) + "\"")
            let children = try client.list(path)
            for child in children.reversed() {
                stack.append(((path == "/" ? "" : path) + "/" + child, depth + 1))
            }
        }
    case "rm":
        for path in rest { try client.remove(path) }
    case "watch":
        guard let path = rest.first else { die("watch needs a path") }
        let count = rest.count > 1 ? Int(rest[1]) ?? Int.max : Int.max
        try client.watch(path, token: "xsctl")
        var seen = 0
        while seen < count {
            let (eventPath, _) = try client.nextEvent()
            print(text(eventPath))
            fflush(stdout)
            seen += 1
        }
    case "history":
        print(try client.control(["history", rest.first ?? "20"]), terminator: "")
    default:
        die("unknown command \(command)\n\(usage)")
    }
} catch {
    die("\(error)")
}
