# vmm/embed.py - turn the benchmark guest ELF into a C array for gmm-vmm.
import sys

data = open(sys.argv[1], 'rb').read()
with open(sys.argv[2], 'w') as out:
    out.write('/* generated from %s by vmm/embed.py */\n' % sys.argv[1].split('/')[-1])
    out.write('#include <stddef.h>\n')
    out.write('extern const unsigned char gmm_guest_elf[];\n')
    out.write('extern const size_t gmm_guest_elf_size;\n')
    out.write('const unsigned char gmm_guest_elf[] = {\n')
    for i in range(0, len(data), 16):
        out.write(','.join(str(b) for b in data[i:i + 16]) + ',\n')
    out.write('};\n')
    out.write('const size_t gmm_guest_elf_size = %d;\n' % len(data))
