// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "rollbackd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "rollbackd", targets: ["rollbackd"]),
        .executable(name: "rollbackd-demo-service", targets: ["rollbackd-demo-service"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
    ],
    targets: [
        // libcurl headers, linked from Debian's libcurl4-openssl-dev.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // Typed, non-variadic wrappers of curl_easy_setopt / curl_easy_getinfo / curl_multi_setopt.
        .target(name: "CCurlShim", dependencies: ["CCurl"]),
        // OpenSSL's libcrypto (HMAC-SHA256 for webhook signatures), linked from Debian's libssl-dev; libcurl
        // already loads it, so it costs no memory of its own.
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // sd-journal.h and sd-daemon.h, linked from Debian's libsystemd-dev.
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // The version, generated before every build by the VersionStamp plugin from tools/version.sh.
        .plugin(name: "VersionStamp", capability: .buildTool()),
        .target(name: "RollbackVersion", plugins: ["VersionStamp"]),
        // Pure Swift: no C modules, no I/O. RealModule gives the evidence test log, exp and log(onePlus:).
        .target(name: "RollbackCore", dependencies: [
            "RollbackVersion", .product(name: "RealModule", package: "swift-numerics"),
        ]),
        .target(name: "RollbackSystem", dependencies: [
            "RollbackCore", "RollbackVersion", "CCurl", "CCurlShim", "CCrypto", "CSystemd",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The long-running parts: the watchdog loop, control socket, privileged executor, the one rollback
        // procedure, drills and incident reports. Built on the adapters; holds no adapter of its own.
        .target(name: "RollbackService", dependencies: [
            "RollbackCore", "RollbackVersion", "RollbackSystem", "CSystemd",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // `rollbackd demo`: a bad release detected, rolled back and verified on loopback.
        .target(name: "RollbackDemo", dependencies: ["RollbackCore", "RollbackSystem", "RollbackService"]),
        .executableTarget(name: "rollbackd", dependencies: [
            "RollbackCore", "RollbackSystem", "RollbackService", "RollbackDemo", "RollbackVersion",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The service guarded in the demo and the end-to-end tests.
        .executableTarget(name: "rollbackd-demo-service", dependencies: ["RollbackCore"]),
        // Sampling benchmarks (Benchmarks/sampling/run.py); never run by the tests.
        .executableTarget(name: "rollbackd-bench", dependencies: ["RollbackCore", "RollbackSystem"],
                          path: "Benchmarks/sampling/Sources"),
        // The tests' one kit: scratch directories, the binary runner, the server launcher, the error type, the
        // clock and waiting, journald (Tests/TestSupport).
        .target(name: "TestSupport", dependencies: ["RollbackCore", "RollbackSystem"], path: "Tests/TestSupport"),
        .testTarget(name: "RollbackCoreTests", dependencies: [
            "RollbackCore",
            .product(name: "PropertyBased", package: "swift-property-based"),
            .product(name: "RealModule", package: "swift-numerics"),
        ]),
        .testTarget(name: "RollbackSystemTests", dependencies: [
            "RollbackCore", "RollbackSystem", "RollbackService", "RollbackDemo", "RollbackVersion", "TestSupport",
        ]),
    ],
    swiftLanguageModes: [.v6]
)
