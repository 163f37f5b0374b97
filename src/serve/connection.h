#pragma once
// Noticing that a client went away while its request is still generating,
// so that its KV-cache slot is freed at once rather than when the next write
// fails. cpp-httplib does not hand handlers the socket; it does tell them
// both ends' addresses, which identify it among the process's sockets.
#include <string>

namespace jetmoe::serve {

// The connected socket with these addresses, or -1 when none matches.
int find_connection_socket(const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port);

// True when the peer closed or reset the connection (data it sent that is
// not read yet, such as a pipelined request, does not count).
bool peer_closed(int fd);

}  // namespace jetmoe::serve
