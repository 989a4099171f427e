// A tiny CRI ImageService client for the integration tests: list, status and remove images on a
// containerd socket (pulls go through `snapimport pull`, the product's own command).
//   cri_client ENDPOINT list
//   cri_client ENDPOINT status IMAGE
//   cri_client ENDPOINT remove IMAGE
//   cri_client ENDPOINT fsinfo         one "MOUNTPOINT USED_BYTES INODES" line per image filesystem
#include <iostream>

#include "plugin/CriImageClient.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: cri_client ENDPOINT list|status IMAGE|remove IMAGE|fsinfo\n";
    return 2;
  }
  try {
    snapimport::plugin::CriImageClient client(argv[1], std::chrono::seconds(60));
    std::string cmd = argv[2];
    if (cmd == "list") {
      for (const auto& i : client.list()) {
        std::cout << i.id;
        for (const auto& t : i.repoTags) std::cout << ' ' << t;
        for (const auto& d : i.repoDigests) std::cout << ' ' << d;
        std::cout << '\n';
      }
    } else if (cmd == "status" && argc == 4) {
      auto i = client.status(argv[3]);
      if (!i) {
        std::cout << "absent\n";
        return 1;
      }
      std::cout << i->id << ' ' << i->size << '\n';
    } else if (cmd == "remove" && argc == 4) {
      client.remove(argv[3]);
    } else if (cmd == "fsinfo") {
      for (const auto& f : client.imageFilesystems()) {
        std::cout << f.mountpoint << ' ' << f.usedBytes << ' ' << f.inodesUsed << '\n';
      }
    } else {
      std::cerr << "cri_client: unknown command " << cmd << "\n";
      return 2;
    }
  } catch (const std::exception& e) {
    std::cerr << "cri_client: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
