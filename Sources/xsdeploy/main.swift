// xsdeploy: the host builder for the stub-domain images: pack, config, deploy, verify, list, rollback.
import ArgumentParser
import DeployKit
import Foundation

/// The `xsdeploy` command and its subcommands (see docs/deploy.md).
struct XSDeploy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xsdeploy",
        abstract: "Pack the xenstore stub-domain images, write their Xen configs, and keep deployments in git.",
        discussion: "Typical flow: make images; xsdeploy pack; xsdeploy config; xsdeploy deploy --repo DIR. See docs/deploy.md.",
        subcommands: [Pack.self, Config.self, Deploy.self, Verify.self, List.self, Rollback.self])
}

/// Runs a step and turns DeployError into a one-line error and exit status 1.
func guarded(_ body: () throws -> Void) throws {
    do { try body() } catch let error as DeployError {
        FileHandle.standardError.write(Data("xsdeploy: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// `xsdeploy pack`: gzip images + manifest.json into a pack directory.
struct Pack: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compress the built images and write manifest.json.")
    @Option(help: "Source tree (git work tree with mk/image.mk).") var source = "."
    @Option(help: "Directory holding the built images (default SOURCE/build).") var images: String?
    @Option(help: "Pack directory to write.") var out = "build/deploy/pack"
    @Option(help: "Comma-separated image kinds, e.g. x86_64-pvh,x86_64-pv.") var kinds = ImageKind.buildable.map(\.description).joined(separator: ",")
    @Flag(help: "Pack even if the image inputs have uncommitted changes (recorded in the manifest).") var allowDirty = false
    @Option(help: "File of key=value build flags (default: ask make -f mk/deploy.mk deploy-print-flags).") var flagsFile: String?

    func run() throws {
        try guarded {
            var options = PackOptions(sourceDirectory: Files.absolute(source), outputDirectory: Files.absolute(out))
            if let images { options.imageDirectory = Files.absolute(images) }
            options.kinds = try kinds.split(separator: ",").map {
                guard let kind = ImageKind(String($0)) else { throw DeployError.missingImage("bad image kind \($0)") }
                return kind
            }
            options.allowDirty = allowDirty
            if let flagsFile { options.buildFlags = Packer.parseFlags(String(decoding: try Files.read(flagsFile), as: UTF8.self)) }
            let manifest = try Packer.pack(options)
            for image in manifest.images { print("\(image.file) \(image.size) \(image.sha256)") }
        }
    }
}

/// `xsdeploy config`: xl config, init-xenstore-domain script and xencommons settings, parsed back.
struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write the xl config, init-xenstore-domain invocation and xencommons settings.")
    @Option(help: "Pack directory (from `pack`).") var pack = "build/deploy/pack"
    @Option(help: "Image the configs boot.") var kind = "x86_64-pvh"
    @Option(help: "Domain memory in MiB (default 16, 32 with --history-disk: a disk's history index needs room; Xen's default is 8).") var memory: Int?
    @Option(help: "Maximum memory in MiB (--maxmem / XENSTORE_MAX_DOMAIN_SIZE).") var maxmem: Int?
    @Option(help: "dom0 directory the images are installed in.") var installDir = "/usr/lib/xen/boot"
    @Option(help: "dom0 path of init-xenstore-domain.") var initXenstoreDomain = "/usr/lib/xen-4.17/bin/init-xenstore-domain"
    @Option(help: "The history disk in dom0 (a raw file or a block device): the image boots with --block and init-xenstore-domain.sh offers it the disk.") var historyDisk: String?
    @Option(help: "Source tree holding tools/stubdom/xenstore-stubdom-disk (written into the pack with a history disk).") var source = "."
    @Option(help: "libxlutil parse-back helper (built by make xlcfg-check).") var xlParser = "build/deploy/xlcfg-check"
    @Flag(help: "Fail unless xl or libxlutil parsed the xl config back.") var requireXenParser = false

    func run() throws {
        try guarded {
            var options = ConfigOptions(packDirectory: Files.absolute(pack))
            guard let parsed = ImageKind(kind) else { throw DeployError.config("bad image kind \(kind)") }
            options.kind = parsed
            options.memoryMiB = memory ?? (historyDisk == nil ? 16 : 32)
            options.maxMemoryMiB = maxmem
            options.installDirectory = installDir
            options.initXenstoreDomain = initXenstoreDomain
            options.historyDisk = historyDisk
            if historyDisk != nil {
                let tool = "\(Files.absolute(source))/\(XenConfig.diskToolSource)"
                guard let data = FileManager.default.contents(atPath: tool) else { throw DeployError.config("\(tool) does not exist") }
                options.diskTool = String(decoding: data, as: UTF8.self)
            }
            let result = try XenConfig.generate(options, xlParser: Files.absolute(xlParser))
            if requireXenParser && !result.parsedByXen {
                throw DeployError.config("neither xl nor libxlutil could parse the xl config here (build the helper: make xlcfg-check)")
            }
            for file in result.files { print("\(options.packDirectory)/\(file)") }
        }
    }
}

/// `xsdeploy deploy`: one tagged commit per deployment in a git repository.
struct Deploy: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Commit a pack into a git deployment repository as one tagged commit.")
    @Option(help: "Deployment repository (created if missing or empty).") var repo: String
    @Option(help: "Pack directory (from `pack` and `config`).") var pack = "build/deploy/pack"
    @Option(help: "Commit subject (default: deploy N: kinds from source commit).") var message: String?

    func run() throws {
        try guarded {
            let tag = try DeploymentRepository(path: repo).deploy(pack: pack, message: message)
            print(tag)
        }
    }
}

/// `xsdeploy verify`: a pack or deployment against its manifest.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a deployment repository (or pack) against its manifest.")
    @Option(help: "Deployment repository or pack directory.") var repo = "build/deploy/pack"

    func run() throws {
        try guarded {
            let manifest = try Verifier.verify(directory: Files.absolute(repo))
            print("OK: \(manifest.images.count) images and \(manifest.configs.count) configs match \(repo)/\(Manifest.fileName) (source \(manifest.source.commit.prefix(12)))")
        }
    }
}

/// `xsdeploy list`: the deploy-N tags, oldest first.
struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the deployments in a deployment repository.")
    @Option(help: "Deployment repository.") var repo: String

    func run() throws {
        try guarded {
            let all = try DeploymentRepository(path: repo).deployments()
            if all.isEmpty { print("no deployments in \(repo)") }
            for info in all {
                print("\(info.isCurrent ? "*" : " ") \(info.tag)\t\(info.commit.prefix(12))\tsource \(info.sourceCommit.prefix(12))\t\(info.images.joined(separator: ","))\t\(info.subject)")
            }
        }
    }
}

/// `xsdeploy rollback`: an earlier deployment's tree as a new tagged commit.
struct Rollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore an earlier deployment as a new tagged commit (history is kept; the branch only moves forward).")
    @Option(help: "Deployment repository.") var repo: String
    @Option(name: .customLong("to"), help: "Deployment to restore: deploy-N or N.") var target: String

    func run() throws {
        try guarded {
            print(try DeploymentRepository(path: repo).rollback(to: target))
        }
    }
}

XSDeploy.main()
