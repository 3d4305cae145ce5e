// The benchmark's upstream: a tiny epoll HTTP/1.1 keep-alive server answering every request with
// the same 1 KiB body. Deliberately minimal so it is never the bottleneck; both proxies under test
// (ours and nginx) talk to the same instance.
//   dpa_bench_upstream --port N [--threads T] [--body-bytes B]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

struct Conn {
  std::string in, out;
};

int listen_socket(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 4096) != 0) {
    std::perror("bind/listen");
    std::exit(1);
  }
  return fd;
}

// Consumes complete requests from c.in, appending one response per request to c.out.
void serve_requests(Conn& c, const std::string& response) {
  std::size_t pos = 0;
  while (true) {
    std::size_t end = c.in.find("\r\n\r\n", pos);
    if (end == std::string::npos) break;
    std::size_t body = 0;
    std::size_t cl = c.in.find("Content-Length:", pos);
    if (cl == std::string::npos) cl = c.in.find("content-length:", pos);
    if (cl != std::string::npos && cl < end) body = std::strtoul(c.in.c_str() + cl + 15, nullptr, 10);
    if (c.in.size() < end + 4 + body) break;
    pos = end + 4 + body;
    c.out += response;
  }
  c.in.erase(0, pos);
}

void run(int port, const std::string& response) {
  int lfd = listen_socket(port);
  int ep = ::epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::unordered_map<int, Conn> conns;
  std::vector<epoll_event> events(512);
  char buf[65536];
  while (true) {
    int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        while (true) {
          int cfd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
          if (cfd < 0) break;
          int one = 1;
          ::setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = cfd;
          ::epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
          conns[cfd];
        }
        continue;
      }
      Conn& c = conns[fd];
      bool closed = false;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        while (true) {
          ssize_t r = ::read(fd, buf, sizeof buf);
          if (r > 0) {
            c.in.append(buf, static_cast<std::size_t>(r));
            if (static_cast<std::size_t>(r) < sizeof buf) break;
            continue;
          }
          if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) closed = true;
          break;
        }
        serve_requests(c, response);
      }
      if (!closed && !c.out.empty()) {
        ssize_t w = ::write(fd, c.out.data(), c.out.size());
        if (w > 0) c.out.erase(0, static_cast<std::size_t>(w));
        if (w < 0 && errno != EAGAIN) closed = true;
        epoll_event cev{};
        cev.events = EPOLLIN | (c.out.empty() ? 0u : static_cast<unsigned>(EPOLLOUT));
        cev.data.fd = fd;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
      }
      if (closed) {
        ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
        conns.erase(fd);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, threads = 1;
  std::size_t body_bytes = 1024;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--port") port = std::atoi(argv[i + 1]);
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
    if (a == "--body-bytes") body_bytes = std::strtoul(argv[i + 1], nullptr, 10);
  }
  if (port <= 0) {
    std::fprintf(stderr, "usage: %s --port N [--threads T] [--body-bytes B]\n", argv[0]);
    return 2;
  }
  std::string response = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                         std::to_string(body_bytes) + "\r\n\r\n" + std::string(body_bytes, 'x');
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(run, port, response);
  run(port, response);
}
