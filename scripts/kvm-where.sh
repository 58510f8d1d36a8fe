# scripts/kvm-where.sh - sourced by scripts/test.sh and scripts/main.sh:
# where the work that needs KVM runs, from GMM_KVM (auto|native|nested|off).
#
#   native  on this machine's /dev/kvm
#   nested  inside the emulated KVM host (tests/kvmhost/kvmhost.py: Debian's
#           kernel under QEMU TCG with nested SVM; functional only, no
#           timing taken there means anything)
#   off     not at all
#   auto    (default) native where /dev/kvm opens, nested elsewhere; the
#           Linux tests go nested on a kvm_pvm machine too (/sys/module/kvm_pvm:
#           guest kernel mode is emulated there, far too slow for a stock
#           kernel).

# True when /dev/kvm opens read-write.
kvm_opens() {
	( exec 3<>/dev/kvm ) 2>/dev/null
}

# kvm_where WHAT: print native, nested or off for WHAT (kvm, linux or main).
kvm_where() {
	case "${GMM_KVM:-auto}" in
	native|nested|off)
		echo "$GMM_KVM"
		return 0 ;;
	auto) ;;
	*)
		echo "GMM_KVM=$GMM_KVM: expected auto, native, nested or off" >&2
		return 1 ;;
	esac
	if ! kvm_opens; then
		echo nested
	elif [ "$1" = linux ] && [ -d /sys/module/kvm_pvm ]; then
		echo nested
	else
		echo native
	fi
}
