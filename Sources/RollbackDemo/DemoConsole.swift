#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The demo's output: permanent lines, and one status line that is redrawn in place on a terminal (`\r` + clear
/// line) or printed as its own line whenever it changes when the output is a file or a pipe (CI, tests).
public final class DemoConsole: Sendable {
    public let fd: Int32
    public let isTerminal: Bool
    private let shown = Mutex<String?>(nil)
    private let lastPrinted = Mutex<String?>(nil)

    public init(fd: Int32) {
        self.fd = fd
        self.isTerminal = isatty(fd) == 1
    }

    private static let clear = "\r\u{1B}[2K"

    private var width: Int {
        var ws = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 10 else { return 120 }
        return Int(ws.ws_col) - 1
    }

    /// A permanent line; on a terminal the status line is cleared first and redrawn under it.
    public func line(_ text: String) {
        shown.withLock { status in
            if isTerminal, let status {
                write(Self.clear + text + "\n" + fit(status))
            } else {
                write(text + "\n")
            }
        }
    }

    /// The live status: redrawn in place on a terminal; elsewhere printed when it changed.
    public func status(_ text: String) {
        if isTerminal {
            shown.withLock { status in
                status = text
                write(Self.clear + fit(text))
            }
        } else {
            let changed = lastPrinted.withLock { last -> Bool in
                defer { last = text }
                return last != text
            }
            if changed { write("  " + text + "\n") }
        }
    }

    /// Removes the status line (the terminal line is left clean for what follows, or for the shell).
    public func endStatus() {
        shown.withLock { status in
            if isTerminal, status != nil { write(Self.clear) }
            status = nil
        }
    }

    private func fit(_ text: String) -> String {
        let w = width
        return text.count > w ? String(text.prefix(max(w - 1, 1))) + "…" : text
    }

    private func write(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }
}
