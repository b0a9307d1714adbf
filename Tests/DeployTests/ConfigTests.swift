// The generated xl config parses back with our parser and with libxlutil (xl's parser); the shell files source.
import DeployKit
import Foundation
import Testing

@Suite struct ConfigTests {
    init() { Progress.enabled = false }

    @Test func configParsesBackWithLibxlutil() throws {
        let root = try temporaryDirectory("config")
        defer { cleanup(root) }
        let source = try FakeSource(in: root, seed: 4)
        var pack = PackOptions(sourceDirectory: source.path, outputDirectory: "\(root)/pack")
        pack.buildFlags = fakeFlags
        try Packer.pack(pack)
        let parser = try buildXLParser(into: root)
        var options = ConfigOptions(packDirectory: "\(root)/pack")
        options.kind = ImageKind("x86_64-pv")!
        options.memoryMiB = 24
        options.maxMemoryMiB = 32
        options.historyDisk = "/var/lib/xenstored/history.img"
        #expect(throws: DeployError.self) { try XenConfig.generate(options, xlParser: parser) }  // no tool text
        options.diskTool = "#!/bin/sh\necho offered\n"
        let result = try XenConfig.generate(options, xlParser: parser)
        #expect(result.parsedByXen, "\(result.validation)")
        #expect(result.validation.contains { $0.hasPrefix("libxlutil") })

        // libxlutil's view of the file, read directly.
        let values = Packer.parseFlags(try sh([parser, "\(root)/pack/\(XenConfig.xlFile)"]))
        #expect(values["type"] == "pv")
        #expect(values["kernel"] == "/usr/lib/xen/boot/xenstore-stubdom-x86_64-pv.gz")
        #expect(values["memory"] == "24")
        #expect(values["maxmem"] == "32")
        #expect(values["disk0.target"] == "/var/lib/xenstored/history.img")
        #expect(values["disk0.vdev"] == "xvda")
        // Our parser agrees.
        let ours = try XenConfig.parse(String(decoding: try Files.read("\(root)/pack/\(XenConfig.xlFile)"), as: UTF8.self))
        #expect(ours["memory"] == .number(24))
        #expect(ours["disk"] == .list([.string("format=raw, vdev=xvda, access=rw, target=/var/lib/xenstored/history.img")]))

        // The configs are covered by the manifest, and the shell files carry the same settings.
        try Verifier.verify(directory: "\(root)/pack")
        #expect(try Manifest.load(from: "\(root)/pack").configs.map(\.file)
                == [XenConfig.xlFile, XenConfig.initFile, XenConfig.xencommonsFile, XenConfig.diskToolFile])
        let script = String(decoding: try Files.read("\(root)/pack/\(XenConfig.initFile)"), as: UTF8.self)
        #expect(script.contains("init-xenstore-domain --kernel /usr/lib/xen/boot/xenstore-stubdom-x86_64-pv.gz --memory 24 --maxmem 32 --param --block"))
        #expect(script.contains("\n/usr/lib/xen/boot/xenstore-stubdom-disk /var/lib/xenstored/history.img\n"))
        #expect(try Files.read("\(root)/pack/\(XenConfig.diskToolFile)") == Array("#!/bin/sh\necho offered\n".utf8))
        let sourced = try sh(["sh", "-c", ". \"$1\"; echo $XENSTORETYPE $XENSTORE_DOMAIN_SIZE $XENSTORE_MAX_DOMAIN_SIZE $XENSTORE_DOMAIN_ARGS", "sh", "\(root)/pack/\(XenConfig.xencommonsFile)"])
        #expect(sourced == "domain 24 32 --param --block")
    }

    @Test func malformedConfigsAreRejectedByBothParsers() throws {
        let root = try temporaryDirectory("badcfg")
        defer { cleanup(root) }
        let parser = try buildXLParser(into: root)
        for bad in ["name = \"unterminated\nmemory = 8\n", "memory 8\n", "disk = [ \"a\", \n", "kernel = \"k\" junk\n"] {
            #expect(throws: DeployError.self, "\(bad)") { try XenConfig.parse(bad) }
            try Files.write(bad, to: "\(root)/bad.cfg")
            #expect(try Shell.run([parser, "\(root)/bad.cfg"]).status != 0, "libxlutil accepted \(bad)")
        }
        let good = "# c\nname='x'; memory = 0x10\nvif = [ 'a', \"b\" ,\n  'c' ]\n"
        try Files.write(good, to: "\(root)/good.cfg")
        #expect(try Shell.run([parser, "\(root)/good.cfg"]).status == 0)
        let parsed = try XenConfig.parse(good)
        #expect(parsed["memory"] == .number(16))
        #expect(parsed["vif"] == .list([.string("a"), .string("b"), .string("c")]))
    }
}
