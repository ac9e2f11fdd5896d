// TLS for the server's listeners (OpenSSL): a context made from a PEM
// certificate chain and key, and the non-blocking record I/O a connection
// does through it.
//
// The context: TLS 1.2 and 1.3 only, OpenSSL's default cipher suites at
// security level 2 (no RC4, 3DES, export or anonymous suites; forward
// secrecy), ALPN "http/1.1" (the only protocol a WebSocket upgrade speaks),
// a server-side session cache and session tickets (resumption), buffers
// released while a connection is idle (SSL_MODE_RELEASE_BUFFERS), partial
// writes, and kernel TLS when the kernel offers it (then a connection's
// writes can bypass OpenSSL: the kernel encrypts).
//
// A context is immutable once made and shared (reference counted by
// OpenSSL): a reload makes a new one for new handshakes while open
// connections keep theirs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct ssl_ctx_st;
struct ssl_st;

namespace wstrace::net {

// Whether this kernel can do TLS itself (the "tls" TCP upper layer).
bool kernel_tls_available();

class TlsContext {
 public:
  // Loads and checks the certificate chain and key (PEM). Null with `error`
  // set (naming the file and what OpenSSL said) when they cannot be used.
  static std::shared_ptr<TlsContext> load(const std::string& cert_file,
                                          const std::string& key_file, std::string& error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  ssl_ctx_st* native() const { return ctx_; }
  // For logs: the leaf certificate's subject, issuer and expiry.
  const std::string& subject() const { return subject_; }
  const std::string& not_after() const { return not_after_; }
  bool kernel_tls() const { return ktls_; }

  // A server-side session on `fd` (non-blocking), or null.
  ssl_st* accept(int fd) const;

 private:
  TlsContext() = default;
  ssl_ctx_st* ctx_ = nullptr;
  std::string subject_;
  std::string not_after_;
  bool ktls_ = false;
};

// Non-blocking record I/O on a session. Results as read(2)/write(2) give
// them: bytes, 0 for the peer's close (read), or -1 with errno set: EAGAIN
// when OpenSSL needs the socket readable or writable again (the caller waits
// for the next epoll edge), EPROTO for a TLS failure (tls_error() says why),
// or the socket's own errno.
enum class TlsStep : uint8_t { Done, Again, Failed };
// The most plaintext one TLS record carries.
constexpr size_t kTlsRecord = 16384;
// Drives the handshake; Done once it has completed.
TlsStep tls_handshake(ssl_st* ssl);
long tls_read(ssl_st* ssl, uint8_t* buf, size_t len);
// Writes at most one record (kTlsRecord bytes of `buf`). After -1/EAGAIN,
// OpenSSL holds that record encrypted: the next call must pass the same
// bytes again, at least as many (the address may change).
long tls_write(ssl_st* ssl, const uint8_t* buf, size_t len);
// Whether the kernel encrypts this session's writes (kernel TLS): then plain
// send(2) on the socket is the fast path.
bool tls_kernel_send(ssl_st* ssl);
// Gives the record buffers back while nothing is buffered (an idle
// connection keeps only the session).
void tls_release_buffers(ssl_st* ssl);
// Sends close_notify, best effort, and frees the session.
void tls_free(ssl_st* ssl);
// The negotiated protocol version ("TLSv1.3") and cipher, for spans and logs.
std::string_view tls_version(ssl_st* ssl);
std::string_view tls_cipher(ssl_st* ssl);
bool tls_resumed(ssl_st* ssl);

// Why the last TLS operation on this thread failed: a short stable reason
// for metrics (protocol_version, no_shared_cipher, http_request, bad_record,
// eof, alert: the client sent one, e.g. it does not trust the certificate, other) and OpenSSL's text for logs and spans.
struct TlsError {
  const char* reason = "other";
  std::string message;
};
TlsError tls_error();

}  // namespace wstrace::net
