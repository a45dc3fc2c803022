// SPDX-License-Identifier: GPL-2.0
/*
 * The project's test module: a debugfs file, /sys/kernel/debug/kcov_test_module/branch, whose
 * write handler takes a different branch for each first byte written ('a', 'b', anything else),
 * so a trace of one write covers known lines of this file and not others. Built out of tree
 * against the test kernel (TestKernelBuilder) and compiled with kcov's instrumentation like the
 * kernel itself; Docs/modules.md describes how its PCs are mapped back to these lines.
 */
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/uaccess.h>

static struct dentry *kcov_test_directory;
static int kcov_test_last_branch;

static noinline int kcov_test_branch_a(int length)
{
	return length * 3 + 1;
}

static noinline int kcov_test_branch_b(int length)
{
	if (length > 4)
		return length - 4;
	return 4 - length;
}

static ssize_t kcov_test_branch_write(struct file *file, const char __user *buffer, size_t count, loff_t *position)
{
	char input[8];
	size_t length = count < sizeof(input) - 1 ? count : sizeof(input) - 1;

	if (copy_from_user(input, buffer, length))
		return -EFAULT;
	input[length] = 0;
	/* WRITE_ONCE: a store the compiler keeps, so each branch stays in the code. */
	if (input[0] == 'a')
		WRITE_ONCE(kcov_test_last_branch, kcov_test_branch_a(length));
	else if (input[0] == 'b')
		WRITE_ONCE(kcov_test_last_branch, kcov_test_branch_b(length));
	else
		WRITE_ONCE(kcov_test_last_branch, -1);
	return count;
}

static const struct file_operations kcov_test_branch_operations = {
	.owner = THIS_MODULE,
	.write = kcov_test_branch_write,
};

static int __init kcov_test_init(void)
{
	kcov_test_directory = debugfs_create_dir("kcov_test_module", NULL);
	debugfs_create_file("branch", 0200, kcov_test_directory, NULL, &kcov_test_branch_operations);
	return 0;
}

static void __exit kcov_test_exit(void)
{
	debugfs_remove(kcov_test_directory);
}

module_init(kcov_test_init);
module_exit(kcov_test_exit);
MODULE_DESCRIPTION("KernelCoverage's test module: a debugfs file with branches for kcov to record");
MODULE_LICENSE("GPL");
