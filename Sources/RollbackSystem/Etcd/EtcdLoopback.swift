/// The command lines of a new etcd cluster whose members all run on this machine's loopback (the fleet demo, and the
/// tests' `EtcdCluster`): one place for the flags that make such a cluster, so both start it the same way.
public enum EtcdLoopback {
    public struct Member: Sendable, Equatable {
        public var name: String
        public var clientPort: Int
        public var peerPort: Int
        public var dataDir: String

        public init(name: String, clientPort: Int, peerPort: Int, dataDir: String) {
            self.name = name
            self.clientPort = clientPort
            self.peerPort = peerPort
            self.dataDir = dataDir
        }
    }

    /// One argv per member (`--initial-cluster-state new`, the given token, logs to stderr). Client URLs are
    /// `https` when `clientTLS` is set; peers always speak plain HTTP on loopback.
    public static func argv(
        etcd: String, members: [Member], token: String, clientTLS: Bool = false
    ) -> [[String]] {
        let scheme = clientTLS ? "https" : "http"
        let initial = members.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
        return members.map { m in
            [
                etcd, "--name", m.name, "--data-dir", m.dataDir,
                "--listen-client-urls", "\(scheme)://127.0.0.1:\(m.clientPort)",
                "--advertise-client-urls", "\(scheme)://127.0.0.1:\(m.clientPort)",
                "--listen-peer-urls", "http://127.0.0.1:\(m.peerPort)",
                "--initial-advertise-peer-urls", "http://127.0.0.1:\(m.peerPort)",
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", token, "--logger", "zap", "--log-outputs", "stderr",
            ]
        }
    }
}
