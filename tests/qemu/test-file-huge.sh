#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# test-file-fio-verify.sh with the guest's RAM on huge pages (QEMU memory-backend-file on
# /dev/hugepages, as SPDK deployments run): the uring bdev registers that memory as io_uring
# fixed buffers, and this checks that the guest's O_DIRECT requests really used them, on top of
# the fio verify, host checksum and restart checks. Reserves 2 MiB pages for the guest (root)
# and gives them back afterwards.
mem=${VQ_MEM:-512M}
need=$(( ${mem%M} / 2 + 8 ))
nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
fr=/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages
[[ "$(stat -f -c %T /dev/hugepages 2>/dev/null)" == hugetlbfs ]] ||
	{ echo "SKIP: no hugetlbfs at /dev/hugepages"; exit 77; }
[[ -r $nr && -r $fr ]] || { echo "SKIP: no 2 MiB huge pages"; exit 77; }
old=$(cat $nr)
free=$(cat $fr)
if (( free < need )); then
	echo $(( old + need - free )) >$nr 2>/dev/null
	if (( $(cat $fr) < need )); then
		echo $old >$nr 2>/dev/null
		echo "SKIP: cannot reserve $need huge pages"
		exit 77
	fi
fi
VQ_MEM_PATH=/dev/hugepages VQ_MEM=$mem VQ_FILE_EXPECT_FIXED=1 \
	bash "$(dirname "$0")/test-file-fio-verify.sh"
rc=$?
echo $old >$nr 2>/dev/null
exit $rc
