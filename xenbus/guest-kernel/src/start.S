/* Two ways in, one entry point, both in 32-bit protected mode with paging
 * off and flat segments:
 * - Xen's XEN_ELFNOTE_PHYS32_ENTRY, as a PVH kernel or as an HVM domain's
 *   firmware (xl's firmware_override, in place of hvmloader): %ebx =
 *   physical address of struct hvm_start_info;
 * - Multiboot v1 (QEMU's -kernel, which an HVM domain's `kernel=` becomes):
 *   %eax = 0x2BADB002, %ebx = the Multiboot information. The header below
 *   uses the "address fields" form, so QEMU loads the file's bytes from
 *   .text to __load_end at 1 MiB (it refuses 64-bit ELF headers otherwise);
 *   it does not zero .bss and puts its information there, so .bss is zeroed
 *   here and that information is not read.
 * We zero .bss, build page tables identity-mapping 0-4 GiB with 2 MiB pages
 * (Xen's special pages and the PCI hole sit just below 4 GiB), enable SSE
 * (the x86_64 Rust target assumes it), enter long mode and call
 * kernel_main(boot_magic, boot_info).
 * No preprocessor: included by Rust's global_asm!. */
        .equ ELFNOTE_PHYS32_ENTRY, 18
        .equ STACK_SIZE, 262144
        .equ MULTIBOOT_MAGIC, 0x1BADB002
        .equ MULTIBOOT_FLAGS, 0x00010000        /* address fields valid */

        .section .note.Xen, "a", @note
        .p2align 2
        .long 4, 4, ELFNOTE_PHYS32_ENTRY
        .asciz "Xen"
        .long pvh_start32

        .section .text.entry32, "ax"
        .code32
        .p2align 2
multiboot_header:
        .long MULTIBOOT_MAGIC, MULTIBOOT_FLAGS, -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)
        .long multiboot_header                  /* header_addr */
        .long __image_start                     /* load_addr */
        .long __load_end                        /* load_end_addr */
        .long 0                                 /* bss_end_addr: none, zeroed below */
        .long pvh_start32                       /* entry_addr */

        .globl pvh_start32
pvh_start32:
        cld
        mov     %eax, %esi              /* boot magic (Multiboot's, or junk) */
        mov     %ebx, %ebp              /* hvm_start_info or Multiboot info */
        mov     $__bss_start, %edi
        mov     $__bss_end, %ecx
        sub     %edi, %ecx
        shr     $2, %ecx
        xor     %eax, %eax
        rep stosl
        mov     $boot_stack_top, %esp
        /* zero PML4, PDPT and four page directories */
        mov     $boot_pml4, %edi
        mov     $(6 * 1024), %ecx
        xor     %eax, %eax
        rep stosl
        movl    $(boot_pdpt + 3), boot_pml4
        mov     $(boot_pd + 3), %eax
        xor     %ecx, %ecx
1:      mov     %eax, boot_pdpt(, %ecx, 8)
        add     $4096, %eax
        inc     %ecx
        cmp     $4, %ecx
        jb      1b
        xor     %ecx, %ecx
2:      mov     %ecx, %eax              /* pd[i] = i << 21 | PS | RW | P */
        shl     $21, %eax
        or      $0x83, %eax
        mov     %eax, boot_pd(, %ecx, 8)
        inc     %ecx
        cmp     $2048, %ecx
        jb      2b
        mov     %cr0, %eax
        and     $~0x4, %eax             /* EM = 0 */
        or      $0x2, %eax              /* MP = 1 */
        mov     %eax, %cr0
        mov     %cr4, %eax
        or      $0x620, %eax            /* PAE | OSFXSR | OSXMMEXCPT */
        mov     %eax, %cr4
        mov     $boot_pml4, %eax
        mov     %eax, %cr3
        mov     $0xc0000080, %ecx       /* EFER.LME */
        rdmsr
        or      $0x100, %eax
        wrmsr
        mov     %cr0, %eax
        or      $0x80000001, %eax       /* PG | PE */
        mov     %eax, %cr0
        lgdt    boot_gdt_desc
        ljmp    $0x08, $start64

        .code64
start64:
        mov     $0x10, %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %ss
        mov     %eax, %fs
        mov     %eax, %gs
        mov     $boot_stack_top, %rsp
        mov     %esi, %edi              /* kernel_main(boot_magic, boot_info) */
        mov     %ebp, %esi
        call    kernel_main
3:      cli
        hlt
        jmp     3b

/* Exception stubs: push a dummy error code where the CPU pushes none, then
 * the vector, and go to the common path, which calls
 * kernel_exception(vector, frame) (it never returns). */
        .macro EXC_NOERR n
        .globl exc_stub_\n
exc_stub_\n:
        push    $0
        push    $\n
        jmp     exc_common
        .endm
        .macro EXC_ERR n
        .globl exc_stub_\n
exc_stub_\n:
        push    $\n
        jmp     exc_common
        .endm
        EXC_NOERR 0
        EXC_NOERR 1
        EXC_NOERR 2
        EXC_NOERR 3
        EXC_NOERR 4
        EXC_NOERR 5
        EXC_NOERR 6
        EXC_NOERR 7
        EXC_ERR 8
        EXC_NOERR 9
        EXC_ERR 10
        EXC_ERR 11
        EXC_ERR 12
        EXC_ERR 13
        EXC_ERR 14
        EXC_NOERR 15
        EXC_NOERR 16
        EXC_ERR 17
        EXC_NOERR 18
        EXC_NOERR 19
exc_common:
        mov     (%rsp), %rdi            /* vector */
        lea     8(%rsp), %rsi           /* error code, then rip, cs, rflags, rsp, ss */
        and     $~0xf, %rsp
        call    kernel_exception
4:      cli
        hlt
        jmp     4b

/* The event-channel upcalls (callback vector and per-vCPU vector): save the
 * caller-saved and SSE registers, call the Rust handler, restore, return
 * from the interrupt. */
        .macro UPCALL name, handler
        .globl \name
\name:
        push    %rbp
        push    %rax
        push    %rcx
        push    %rdx
        push    %rsi
        push    %rdi
        push    %r8
        push    %r9
        push    %r10
        push    %r11
        mov     %rsp, %rbp
        sub     $512, %rsp              /* the SSE state the Rust code may touch */
        and     $~0xf, %rsp
        fxsave  (%rsp)
        call    \handler
        fxrstor (%rsp)
        mov     %rbp, %rsp
        pop     %r11
        pop     %r10
        pop     %r9
        pop     %r8
        pop     %rdi
        pop     %rsi
        pop     %rdx
        pop     %rcx
        pop     %rax
        pop     %rbp
        iretq
        .endm
        UPCALL upcall_stub, kernel_upcall
        UPCALL upcall_percpu_stub, kernel_upcall_percpu

        .section .rodata
        .p2align 3
boot_gdt:
        .quad 0, 0x00af9a000000ffff, 0x00cf92000000ffff
boot_gdt_desc:
        .word 23
        .long boot_gdt

        .section .bss
        .p2align 12
boot_pml4:      .skip 4096
boot_pdpt:      .skip 4096
boot_pd:        .skip 4 * 4096
boot_stack:     .skip STACK_SIZE
boot_stack_top:
