// swift-tools-version: 6.0
// Xenstore daemon in Swift: pure core modules (Embedded-compatible, no I/O) plus thin host shells.
// The unikernel images are built by the Makefile, which compiles the same core sources in Embedded mode.
import PackageDescription

/// Core modules are checked against the Embedded Swift subset in host builds too.
let coreSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v5),
]
/// Host shells use libc globals (stderr, signal flags) directly.
let hostSettings: [SwiftSetting] = [.swiftLanguageMode(.v5)]

/// The command-line parser of the three executables.
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
    name: "XenstoreSwift",
    products: [
        .executable(name: "xenstored", targets: ["xenstored"]),
        .executable(name: "xsctl", targets: ["xsctl"]),
        .executable(name: "xsdeploy", targets: ["xsdeploy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.7.0"),
    ],
    targets: [
        // CORE (pure Swift, no I/O, compiled in Embedded mode for the stub domain too)
        .target(name: "XenstoreWire", swiftSettings: coreSettings),
        .target(name: "XenstoreStore", dependencies: ["XenstoreWire"], swiftSettings: coreSettings),
        .target(name: "XenstoreServer", dependencies: ["XenstoreWire", "XenstoreStore"], swiftSettings: coreSettings),
        .target(name: "XenstoreBlock", dependencies: ["XenstoreStore"], swiftSettings: coreSettings),
        .target(name: "XenstoreRing", dependencies: ["XenstoreWire", "XenstoreStore", "XenstoreServer"], swiftSettings: coreSettings),
        // HOST SHELLS (sockets, files, clocks)
        .systemLibrary(name: "CHost", path: "Sources/CHost"),
        .target(name: "XenstoreHost", dependencies: ["XenstoreServer", "XenstoreBlock", "XenstoreRing", "CHost"], swiftSettings: hostSettings),
        // XEN (dom0: Xen's user-space libraries from libxen-dev; rings of dom0's kernel and guests)
        .systemLibrary(name: "CXen", path: "Sources/CXen"),
        .target(name: "XenstoreXen", dependencies: ["XenstoreHost", "XenstoreRing", "XenstoreServer", "CXen"], swiftSettings: hostSettings),
        .executableTarget(name: "xenstored", dependencies: ["XenstoreHost", "XenstoreXen", "XenstoreServer", "XenstoreStore", "XenstoreBlock", argumentParser], swiftSettings: hostSettings),
        // libfuse3 (Debian's libfuse3-dev) behind a path-level interface, for `xsctl mount`.
        .target(name: "CFuseGlue", cSettings: [.define("FUSE_USE_VERSION", to: "31"), .define("_FILE_OFFSET_BITS", to: "64")],
                linkerSettings: [.linkedLibrary("fuse3")]),
        .executableTarget(name: "xsctl", dependencies: ["XenstoreWire", "XenstoreStore", "XenstoreHost", "CFuseGlue", argumentParser], swiftSettings: hostSettings),
        // DEPLOYMENT (host builder: pack, xl config, git deployment repository; see docs/deploy.md)
        .target(name: "DeployKit", dependencies: ["CHost"], swiftSettings: hostSettings),
        .executableTarget(name: "xsdeploy", dependencies: ["DeployKit", argumentParser], swiftSettings: hostSettings),
        // TESTS (TestSupport: the in-memory client, the seeded generator and the simulated device they share)
        .target(name: "TestSupport", dependencies: ["XenstoreWire", "XenstoreStore", "XenstoreServer", "XenstoreBlock"], path: "Tests/TestSupport"),
        .testTarget(name: "XenstoreCoreTests", dependencies: ["TestSupport", "XenstoreWire", "XenstoreStore", "XenstoreServer", "XenstoreRing"]),
        .testTarget(name: "IntegrationTests", dependencies: ["TestSupport", "XenstoreWire", "XenstoreHost"], swiftSettings: hostSettings),
        .testTarget(name: "XenstoreBlockTests", dependencies: ["TestSupport", "XenstoreBlock", "XenstoreStore", "XenstoreServer", "XenstoreRing", "XenstoreWire"]),
        .testTarget(name: "DeployTests", dependencies: ["DeployKit"], swiftSettings: hostSettings),
        .testTarget(name: "XenTransportTests", dependencies: ["XenstoreXen", "XenstoreHost", "XenstoreRing", "XenstoreServer", "XenstoreWire"], swiftSettings: hostSettings),
    ]
)
