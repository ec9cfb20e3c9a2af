/*
 * tcp-touch ADDRESS [COUNT]: make COUNT (default 3) complete TCP connections
 * from ADDRESS to a listener on ADDRESS, so a p0f sniffing the loopback
 * interface sees handshakes from that host. Test helper only.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int family, lfd, i, count = argc > 2 ? atoi(argv[2]) : 3;

	if (argc < 2) {
		fprintf(stderr, "usage: tcp-touch ADDRESS [COUNT]\n");
		return 2;
	}
	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, argv[1], &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		family = AF_INET;
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, argv[1], &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		family = AF_INET6;
		sl = sizeof(struct sockaddr_in6);
	} else {
		fprintf(stderr, "tcp-touch: not an address: %s\n", argv[1]);
		return 2;
	}
	ss.ss_family = (sa_family_t)family;
	lfd = socket(family, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&ss, sl) < 0 || listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0) {
		perror("tcp-touch: listen");
		return 1;
	}
	for (i = 0; i < count; i++) {
		int cfd = socket(family, SOCK_STREAM, 0), afd;
		char b = 'x';
		if (cfd < 0 || connect(cfd, (struct sockaddr *)&ss, sl) < 0) {
			perror("tcp-touch: connect");
			return 1;
		}
		afd = accept(lfd, NULL, NULL);
		if (afd < 0 || write(cfd, &b, 1) != 1 || read(afd, &b, 1) != 1) {
			perror("tcp-touch: exchange");
			return 1;
		}
		close(cfd);
		close(afd);
	}
	close(lfd);
	return 0;
}
