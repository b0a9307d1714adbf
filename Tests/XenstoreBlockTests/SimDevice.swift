// The block tests' view of the shared test support: the simulated device and the seeded generator come from TestSupport.

@_exported import TestSupport

extension SplitMix64 {
    /// The block tests' seeding (one step ahead of `init(seed:)`), so that recorded simulator
    /// seeds replay the same runs as before the generator was shared.
    init(blockSeed seed: UInt64) { self.init(seed: seed &+ 0x9E37_79B9_7F4A_7C15) }
}
